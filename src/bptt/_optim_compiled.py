"""The optimizers' fused updates, compiled: one array of parameters, its gradient and its state at a time.

``optim.py`` holds the optimizers; each one that has a compiled update declares it
(``fused_update``: its code here, its state arrays, its numbers).  ``kernels.train_step`` calls
``update`` for each parameter after the gradient and the clipping, in one compiled call.  Each
update is written in the order of its numpy ``step``, operation for operation, so float64 training
equals the numpy loop (tests/test_compiled_train.py).  A code without a branch raises: no optimizer
is ever run as another.

hyper (float64, ``kernels.STEP_FIELDS``): [2] lr, [3] c1, [4] c2, [5] beta1, [6] beta2, [7] eps,
[8] momentum, [9] nesterov; every number is cast to the arrays' dtype before it meets them, as numpy
does with a Python float and a float32 array.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .optim import FUSED_ADAM, FUSED_SGD

_NO_BRANCH = "bptt._optim_compiled: no compiled update for this optimizer code; add it to _optim_compiled.update"

# numba's on-disk cache of this file's kernels is dropped only when this file changes, not when the
# modules compiled into them do (optim.py): this stamp of their sources
# changes this file with them (tests/test_structure.py checks it and prints the new value).
NUMBA_CACHE_STAMP = "9ac85d43cdd5bdcf"


@njit(cache=True, error_model="numpy")
def in_dtype(v, like):
    """The float v in the dtype of the array ``like`` (float32 data: float32 scalars)."""
    a = np.empty(1, like.dtype)
    a[0] = v
    return a[0]


@njit(cache=True, error_model="numpy")
def _adam(p, g, m, v, hyper):
    """optim.Adam.step for one array: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g g,
    p <- p - (lr/c1) m / (sqrt(v)/sqrt(c2) + eps), operation for operation."""
    b1 = in_dtype(hyper[5], g)
    b2 = in_dtype(hyper[6], g)
    ob1 = in_dtype(1 - hyper[5], g)
    ob2 = in_dtype(1 - hyper[6], g)
    lrc = in_dtype(hyper[2] / hyper[3], g)
    sc2 = in_dtype(math.sqrt(hyper[4]), g)
    eps = in_dtype(hyper[7], g)
    pf, gf, mf, vf = p.reshape(p.size), g.reshape(g.size), m.reshape(m.size), v.reshape(v.size)
    for i in range(pf.size):
        gi = gf[i]
        mi = mf[i] * b1
        mi = mi + ob1 * gi
        vi = vf[i] * b2
        vi = vi + ob2 * gi * gi
        mf[i] = mi
        vf[i] = vi
        pf[i] = pf[i] - lrc * mi / (np.sqrt(vi) / sc2 + eps)


@njit(cache=True, error_model="numpy")
def _sgd(p, g, v, hyper):
    """optim.SGD.step for one array (plain, momentum, Nesterov)."""
    mom = hyper[8]
    md = in_dtype(mom, g)
    lr = in_dtype(hyper[2], g)
    pf, gf, vf = p.reshape(p.size), g.reshape(g.size), v.reshape(v.size)
    for i in range(pf.size):
        gi = gf[i]
        if mom != 0:
            vi = vf[i] * md
            vi = vi + gi
            vf[i] = vi
            d = gi + md * vi if hyper[9] != 0 else vi
        else:
            d = gi
        pf[i] = pf[i] - lr * d


@njit(cache=True, error_model="numpy")
def update(code, p, g, s1, s2, hyper):
    """The optimizer ``code``'s update of one parameter array p (in place) from its gradient g and state
    s1, s2 (Adam: m, v; SGD: v, and s2 unused)."""
    if code == FUSED_ADAM:
        _adam(p, g, s1, s2, hyper)
    elif code == FUSED_SGD:
        _sgd(p, g, s1, hyper)
    else:
        raise ValueError(_NO_BRANCH)
