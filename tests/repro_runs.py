"""Four small trainings through `bptt train`, each model.npz's parameters hashed; run by
tests/test_reproducibility.py in subprocesses with different BLAS kernels and thread counts.

Prints one JSON object: {run name: sha256 of the parameters' bytes, ..., "openblas": the kernel numpy's
OpenBLAS reports}.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import sys
import tempfile

import numpy as np

from bptt.cli import main

SMALL = ["--n-train", "400", "--n-val", "100", "--n-test", "100"]
RUNS = {
    # Adam on a masked task (only the last step scored), the numpy engine's checked path
    "adding": ["--task", "adding", "--length", "30", *SMALL, "--epochs", "6"],
    # the compiled training step (lanes kernel)
    "binary-addition": ["--task", "binary-addition", "--epochs", "5"],
    # Hessian-free: Gauss-Newton products, CG dot products, line search
    "hf": ["--task", "adding", "--length", "15", "--n-train", "300", "--n-val", "100", "--n-test", "100",
           "--optimizer", "hf", "--epochs", "4", "--hf-curvature-batch", "150"],
    # the torch layer's own backward
    "torch": ["--task", "adding", "--length", "30", *SMALL, "--epochs", "3", "--backend", "torch"],
}


def parameter_hash(path: str) -> str:
    with np.load(path, allow_pickle=False) as z:
        return hashlib.sha256(b"".join(z[k].tobytes() for k in ("w", "w_x", "w_h", "b1", "b2"))).hexdigest()


def openblas_kernel() -> str:
    """The kernel numpy's OpenBLAS chose (it follows OPENBLAS_CORETYPE), or '?' if not found."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "?"


if __name__ == "__main__":
    names = sys.argv[1:] or list(RUNS)
    out = {}
    for name in names:
        d = os.path.join(tempfile.mkdtemp(), "run")
        code = main(["train", *RUNS[name], "--seed", "0", "--out", d, "--plots", "none", "--no-progress", "--json"])
        assert code in (0, None), (name, code)
        out[name] = parameter_hash(os.path.join(d, "model.npz"))
    out["openblas"] = openblas_kernel()
    print(json.dumps(out))
