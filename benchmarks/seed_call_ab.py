"""The seed's call (T = 2), this tree against an earlier commit, interleaved in one process.

    python benchmarks/seed_call_ab.py 7b2f80f [ROUNDS] [--close] [--length T]

The earlier commit's package is unpacked (git archive) as `bptt_base` into a temporary folder and both are
timed in turns, four input forms each, for the float64 network (RNN.scalar(), the seed's own call) and the
float32 one (`bptt bench`'s seed rows), min of 60 x 300 calls per round: so the two are measured under the
same load, which on a shared machine matters more than any single figure.  Before timing, both trees'
results are compared bit for bit (loss and the five gradients, every form and dtype, the seed's point
and random networks, with and without h0); ``--length T`` times the seed's network on a random sequence of T steps instead.  Any difference stops the script (with ``--close``, for a base before floatmath, whose exp had other last
bits: any difference beyond 64 ulp).  The earlier commit's
kernels are compiled in this process, this tree's usually come from numba's on-disk cache; freshly
compiled code was measured up to 8 % faster (the lanes kernel, T = 100, B = 32, H = 8), so the ratios
lean against this tree.
"""

import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DTYPES = (np.float64, np.float32)


def base_package(commit: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bptt_base_"))
    archive = subprocess.run(["git", "archive", commit, "src/bptt"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "src" / "bptt").rename(folder / "bptt_base")
    return folder


def forms(x: np.ndarray, y: np.ndarray, dtype) -> dict:
    """The seed's call's input forms of the scalar sequences x, y (T,): lists of Python floats, then arrays."""
    x, y = x.astype(dtype), y.astype(dtype)
    return {"list": (x.tolist(), y.tolist()), "1-D": (x, y), "(T, D)": (x[:, None].copy(), y[:, None].copy()),
            "(T, B, D)": (x[:, None, None].copy(), y[:, None, None].copy())}


def same_bits(a, b) -> bool:
    (la, ga), (lb, gb) = a, b
    return (np.float64(la).tobytes() == np.float64(lb).tobytes() and sorted(ga) == sorted(gb)
            and all(ga[k].dtype == gb[k].dtype and ga[k].shape == gb[k].shape and ga[k].tobytes() == gb[k].tobytes()
                    for k in ga))


def close(a, b, dtype) -> bool:
    """Loss and gradients within a few ulp of each other (``--close``: a base before floatmath, whose exp and tanh
    had other last bits)."""
    (la, ga), (lb, gb) = a, b
    tol = 64 * np.finfo(dtype).eps
    return bool(np.isclose(la, lb, rtol=tol, atol=0) and all(np.allclose(ga[k], gb[k], rtol=tol, atol=tol * np.abs(ga[k]).max())
                                                            for k in ga))


def check_bits(pkgs: dict, near: bool = False) -> int:
    """Both trees give the same bits on every form (``near``: the same to a few ulp): the seed's point and
    random networks; returns the count."""
    rng = np.random.default_rng(0)
    cases = [((1.0, 1.0, 1.0, 1.0, 1.0), np.array([1.0, 0.0]), np.array([0.5, 0.5]), None)]
    for T in (1, 2, 7, 40):
        for h0 in (None, 0.3):
            cases.append((tuple(rng.standard_normal(5)), rng.standard_normal(T), rng.random(T), h0))
    n = 0
    for dtype in DTYPES:
        for w, xs, ys, h0 in cases:
            for form, (x, y) in forms(xs, ys, dtype).items():
                got = [pkg.RNN.scalar(*w, dtype=dtype).loss_and_grad(x, y, h0=h0) for pkg in pkgs.values()]
                if not (close(*got, dtype) if near else same_bits(*got)):
                    raise SystemExit(f"different bits: {np.dtype(dtype).name} {form} w={w} h0={h0}: {got}")
                n += 1
    return n


def main() -> None:
    near = "--close" in sys.argv
    length = int(sys.argv[sys.argv.index("--length") + 1]) if "--length" in sys.argv else None
    args = [a for a in sys.argv[1:] if a != "--close" and a != "--length" and a != str(length)]
    commit = args[0] if args else "HEAD~1"
    rounds = int(args[1]) if len(args) > 1 else 3
    sys.path[:0] = [str(ROOT / "src"), str(base_package(commit))]
    import bptt
    import bptt_base

    pkgs = {"now": bptt, commit: bptt_base}
    n = check_bits(pkgs, near)
    print(f"{'within 64 ulp' if near else 'bits: the same'} in all {n} cases (loss and five gradients)\n")
    seed_x, seed_y = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    if length:  # the seed's network on a longer sequence: the serial chain's cost
        rng = np.random.default_rng(1)
        seed_x, seed_y = rng.uniform(-1, 1, length), rng.uniform(0, 1, length)
    best: dict = {}
    for _ in range(rounds):
        for dtype in DTYPES:
            for name, pkg in pkgs.items():
                m = pkg.RNN.scalar(dtype=dtype)
                for form, (x, y) in forms(seed_x, seed_y, dtype).items():
                    call = (lambda m=m, x=x, y=y: m.loss_and_grad(x, y))
                    call()
                    t = min(timeit.repeat(call, number=300, repeat=60)) / 300 * 1e6
                    key = (np.dtype(dtype).name, name, form)
                    best[key] = min(best.get(key, 1e9), t)
    print(f"| dtype | form | now | {commit} | now / {commit} |\n|---|---|---|---|---|")
    for dtype in DTYPES:
        dt = np.dtype(dtype).name
        for form in forms(seed_x, seed_y, dtype):
            print(f"| {dt} | {form} | {best[dt, 'now', form]:.2f} µs | {best[dt, commit, form]:.2f} µs | "
                  f"{best[dt, 'now', form] / best[dt, commit, form]:.2f} |")


if __name__ == "__main__":
    main()
