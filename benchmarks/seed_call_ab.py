"""The seed's call (T = 2, float64), this tree against an earlier commit, interleaved in one process.

    python benchmarks/seed_call_ab.py 7b2f80f [ROUNDS]

The earlier commit's package is unpacked (git archive) as `bptt_base` into a temporary folder and both are
timed in turns, four input forms each (min of 60 x 300 calls per round): so the two are measured under the
same load, which on a shared machine matters more than any single figure.
"""

import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def base_package(commit: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bptt_base_"))
    archive = subprocess.run(["git", "archive", commit, "src/bptt"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "src" / "bptt").rename(folder / "bptt_base")
    return folder


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "HEAD~1"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sys.path[:0] = [str(ROOT / "src"), str(base_package(commit))]
    import bptt
    import bptt_base

    forms = {"list": ([1.0, 0.0], [0.5, 0.5]), "1-D": (np.array([1.0, 0.0]), np.array([0.5, 0.5])),
             "(T, D)": (np.array([[1.0], [0.0]]), np.array([[0.5], [0.5]])),
             "(T, B, D)": (np.array([[[1.0]], [[0.0]]]), np.array([[[0.5]], [[0.5]]]))}
    models = {"now": bptt.RNN.scalar(), commit: bptt_base.RNN.scalar()}
    best: dict = {}
    for _ in range(rounds):
        for name, m in models.items():
            for form, (x, y) in forms.items():
                call = (lambda m=m, x=x, y=y: m.loss_and_grad(x, y))
                call()
                t = min(timeit.repeat(call, number=300, repeat=60)) / 300 * 1e6
                best[name, form] = min(best.get((name, form), 1e9), t)
    print(f"| form | now | {commit} | now / {commit} |\n|---|---|---|---|")
    for form in forms:
        print(f"| {form} | {best['now', form]:.2f} µs | {best[commit, form]:.2f} µs | "
              f"{best['now', form] / best[commit, form]:.2f} |")


if __name__ == "__main__":
    main()
