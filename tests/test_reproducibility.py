"""The same training gives the same bits whatever the BLAS kernel, the thread counts and the load.

tests/repro_runs.py trains four small runs through `bptt train` (Adam on the masked adding
problem, the compiled step on binary addition, Hessian-free, the torch backend) and prints a
hash of each model.npz's parameters.  It runs here in fresh processes under every
OPENBLAS_CORETYPE this CPU can execute (at least three) crossed with one and two threads for
OpenBLAS, numba, OpenMP and MKL, with another process keeping a core busy; every hash must be
the same.  (Before bptt computed its products in a fixed order, the adding and HF runs
differed between Sandybridge, Haswell and SkylakeX kernels, and HF between 1 and 2 threads.)

The same runs also give the same bits with numpy's SIMD dispatch turned off (NPY_DISABLE_CPU_FEATURES)
and with the compiled kernels built for a generic x86-64 CPU (NUMBA_CPU_NAME=generic): a machine
without AVX-512, AVX2 or FMA trains the same parameters.  (numpy's own exp and tanh changed the
adding and HF runs this way, numba's fused multiply-adds the compiled step; both are gone: every
exp, log and tanh is bptt.floatmath's.)  The torch backend is the exception: torch picks its own
vectorised exp by the CPU (ATEN_CPU_CAPABILITY=default changes its run), so it is not compared here.

The full matrix is marked slow (CI runs it); the default run compares the masked Adam and HF
runs under the first and last kernel with 1 and 2 threads.

Where the environment already sets OPENBLAS_CORETYPE (some machines need it for OpenBLAS to run
at all), that setting is kept and only the thread counts vary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# OpenBLAS kernels and the CPU flag each needs (a kernel the CPU cannot execute would crash).
KERNELS = {"Nehalem": "sse4_2", "Sandybridge": "avx", "Haswell": "avx2", "SkylakeX": "avx512f"}


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _coretypes() -> list[str | None]:
    if os.environ.get("OPENBLAS_CORETYPE"):
        return [None]  # keep the machine's own setting
    flags = _cpu_flags()
    return [k for k, flag in KERNELS.items() if flag in flags]


def _run(coretype: str | None, threads: int, runs: tuple[str, ...] = (), extra_env: dict | None = None) -> dict:
    env = dict(os.environ, **(extra_env or {}))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    proc = subprocess.run([sys.executable, str(HERE / "repro_runs.py"), *runs], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(settings: list[tuple[str | None, int]], runs: tuple[str, ...] = ()) -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # the other core is taken
    try:
        results = {(c, t): _run(c, t, runs) for c, t in settings}
    finally:
        busy.kill()
        busy.wait()
    for (c, t), r in results.items():
        kernel = r.pop("openblas")
        if c is not None:
            assert kernel.lower() == c.lower(), (c, kernel)  # the kernel really changed
    first = next(iter(results.values()))
    assert set(first) == set(runs or ("adding", "binary-addition", "hf", "torch"))
    for key, r in results.items():
        assert r == first, f"{key} trained other parameters: {r} vs {first}"


@pytest.mark.slow
def test_training_is_bit_identical_across_blas_kernels_threads_and_load():
    coretypes = _coretypes()
    if coretypes != [None]:
        assert len(coretypes) >= 3, f"this CPU runs only the OpenBLAS kernels {coretypes}"
    _compare([(c, t) for c in coretypes for t in (1, 2)])


def test_masked_adam_and_hf_are_bit_identical_on_two_blas_kernels_and_thread_counts():
    """The quick version for the default run: the two runs BLAS used to change, two settings."""
    coretypes = _coretypes()
    _compare([(coretypes[0], 1), (coretypes[-1], 2)], ("adding", "hf"))


def _numpy_dispatch_targets() -> list[str]:
    """The SIMD targets numpy dispatches to on this CPU (what NPY_DISABLE_CPU_FEATURES can turn off)."""
    import numpy as np

    umath = getattr(getattr(np, "_core", None), "_multiarray_umath", None)
    have = getattr(umath, "__cpu_features__", {})
    return [f for f in getattr(umath, "__cpu_dispatch__", []) if have.get(f)]


def test_engine_kernels_and_hf_are_bit_identical_without_simd_dispatch_and_on_a_generic_cpu(tmp_path):
    targets = _numpy_dispatch_targets()
    if not targets:
        pytest.skip("numpy dispatches to no SIMD target on this CPU: nothing to turn off")
    runs = ("adding", "binary-addition", "hf")
    plain = _run(None, 1, runs)
    no_simd = _run(None, 1, runs, {"NPY_DISABLE_CPU_FEATURES": " ".join(targets)})
    # a cache of its own: numba's cache holds code for this CPU's name and must not be reused
    generic = _run(None, 1, runs, {"NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    for r in (plain, no_simd, generic):
        r.pop("openblas")
    assert no_simd == plain, f"numpy without {targets} trained other parameters: {no_simd} vs {plain}"
    assert generic == plain, f"kernels for a generic CPU trained other parameters: {generic} vs {plain}"
