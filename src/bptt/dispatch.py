r"""Gradient dispatch (which implementation computes a gradient) and checkpointing over time.

Checkpointing (``RNN.loss_and_grad(..., checkpoint="sqrt" | k)``) gives the exact
full-BPTT gradient while storing only every k-th hidden state:

    forward sweep:  run t = 1..T, keep h_0, h_k, h_2k, ...         (ceil(T/k) + 1 states)
    backward sweep: for each segment [s, s+k), last to first:
                    recompute h_s..h_{s+k} from the stored h_s     (k + 1 states, reused)
                    backprop it, starting from the carry dLoss/dh_{s+k} = dz_{s+k+1} w_h
                    that the later segment left, and leave dLoss/dh_s for the one before.

The carry is exactly the term dz_{t+1} w_h of the full recurrence
dz_t = (du_t w + dz_{t+1} w_h) * f'(z_t), so the gradient is full BPTT's up to
rounding (the sums run in a different order).  Stored hidden states:
(ceil(T/k) + 1) + (k + 1) vectors of B x H numbers, minimal (about 2 sqrt(T)) at
k = ceil(sqrt(T)), the default "sqrt".  The cost is one extra forward pass.
x and y themselves (T B D and T B O numbers) are the caller's and are not copied.

Truncated BPTT is not combined with checkpointing (its windows cross segment
boundaries); asking for both raises BPTTError.

The same segment interface (``segment(x, y, h_start, carry, need_grad)``) is
served by the numpy reference (``NumpyRunner`` below, built from engine.py's
pieces) and by the compiled kernels (``kernels.py``).

Which implementation computes a gradient is decided here, and only here
(``loss_and_grad``), from the sizes, the dtype and the options; the network comes as
one ``Network`` record (made once per model) and the data validated, in the canonical
form ``RNN`` makes (x (T, B, D), y (T, B, O), h0 (B, H) or None for zeros,
C-contiguous, in the model's dtype):

    one compiled call for the whole sequence   small networks, no checkpointing (``fast_kernel``):
                                               kernels.scalar_fast (the seed's network),
                                               kernels.lanes_kernel, kernels.batched_fast
    segment runners                            everything else, and a whole-sequence call whose
                                               result is not finite (the runners explain it):
                                               NumpyRunner or kernels.RUNNERS[choose_kernel(...)]
    engine.forward + engine.backward           backend "numpy" without checkpointing

which implementation runs a forward pass alone (``forward``: RNN.forward, predict, loss; the training
loop's validation pass), the same bits either way,

and, for training, whether a mini-batch's whole update (gradient, clipping, the optimizer's step)
runs as one compiled call, and with which kernel (``step_kernel``; backends.CompiledBackend runs it).
"""

from __future__ import annotations

import math
import sys
from typing import Any, NamedTuple

import numpy as np

from . import engine
from .engine import loss_scale
from .products import matmul as mm
from . import losses
from .activations import Activation, require, supports
from .losses import Loss
from .validation import BPTTError, check_checkpoint, check_choice

BACKENDS = ("auto", "numpy", "numba")
KERNELS = ("scalar", "loop", "parallel")  # the compiled segment runners, kernels.RUNNERS
# B H^2 multiply-adds per step from which the "parallel" kernel (products shared between threads)
# takes over from "loop" (one thread).
PARALLEL_MIN_MACS = 1 << 21
# The whole-sequence calls' sizes: "lanes" (lanes_kernel, the batch as the vector lane) from
# LANES_MIN_B sequences for H <= LANES_MAX_H; otherwise batched_fast ("loop") up to FAST_MAX_MACS
# multiply-adds per step (B H^2).  Beyond that the per-call Python work is small next to the kernel
# and the segment runners take it.
LANES_MIN_B = 8
LANES_MAX_H = 16
FAST_MAX_MACS = 1 << 16


# The forward pass's compiled loop (curvature_kernels.forward) gives the engine's bits without the
# interpreter between steps.  Loading its module costs ~0.2 s a process (and ~10 s of compiling once per
# machine), so a process that has loaded no compiled recurrence yet (`bptt seed`, a small predict) loads it
# only for a loop of at least this much work (T B H); a training run has loaded bptt.kernels already
# (`bptt train --task binary-addition`: 1.15 s with its validation passes compiled, 1.45 s on the engine's loop).
COMPILED_FORWARD_MIN_WORK = 1 << 22
_RECURRENCE_MODULES = ("bptt.kernels", "bptt.curvature_kernels")


class NonFinite(BPTTError):
    """The loss or a gradient is not finite (the caller may first say which input is)."""


def choose_kernel(T: int, B: int, D: int, H: int, O: int) -> str:
    """Which segment kernel backend="auto" (and "numba") uses for these sizes."""
    if B == 1 and D == 1 and H == 1 and O == 1:
        return "scalar"
    if B * H * H < PARALLEL_MIN_MACS:
        return "loop"
    return "parallel"


def fast_kernel(B: int, H: int, lanes: bool = True) -> str | None:
    """Which whole-sequence call computes a (B, H) network that is not the scalar one; None: too big.

    lanes=False leaves out the lanes kernel: the public float64 call keeps the loop kernel's
    summation order, so float64 results are bit for bit those of the segment runners; float32 calls
    and the compiled training step take the lanes kernel."""
    if lanes and B >= LANES_MIN_B and H <= LANES_MAX_H:
        return "lanes"
    if B * H * H <= FAST_MAX_MACS:
        return "loop"
    return None


def step_kernel(net: "Network", T: int, B: int, checkpoint: Any = None) -> str | None:
    """The whole-sequence kernel of the compiled training step (``kernels.train_step``: a mini-batch's
    gradient, clipping and the optimizer's update in one call) for B whole sequences of length T:
    "lanes" or "loop" (kernels.STEP_KERNELS; the lanes kernel in float64 too, unlike the public call);
    None where that step does not apply: an activation or the loss without a compiled branch,
    checkpointing, T = 0, or sizes beyond ``fast_kernel``'s.  Whether the optimizer has a compiled
    update and the chunk is whole sequences without a mask, the caller (backends.CompiledBackend) knows."""
    if net.codes is None or checkpoint is not None or T == 0:
        return None
    return fast_kernel(B, net.p.w_h.shape[0])


def segment_length(T: int, checkpoint: Any) -> int:
    """k, the number of steps between stored hidden states (T: no checkpointing)."""
    if checkpoint is None:
        return T
    if checkpoint == "sqrt":
        return max(1, math.isqrt(T - 1) + 1) if T > 1 else 1  # ceil(sqrt(T))
    return min(int(checkpoint), T)


def stored_states(T: int, k: int) -> int:
    """Hidden-state vectors (each B x H) held at once: checkpoints plus one segment."""
    if k >= T:
        return T + 1
    return (T + k - 1) // k + 1 + (k + 1)


def check_options(backend: Any, checkpoint: Any, truncate: Any) -> Any:
    """Validate backend and checkpoint (truncate is checked by the model); returns the checkpoint."""
    check_choice("backend", backend, BACKENDS)
    return check_checkpoint(checkpoint, truncate)


def choose_backend(backend: str, hidden_act: Activation, output_act: Activation, criterion: Loss) -> str:
    """The backend that runs these activations and this loss: 'numpy' or 'numba'.

    "auto" is "numba" when the tables give both activations and the loss a compiled version, else
    "numpy" (same results, reference speed); "numba" refuses one without (BPTTError).
    """
    if backend == "numpy":
        return "numpy"
    compiled = supports(hidden_act, "numba") and supports(output_act, "numba") and "numba" in criterion.backends
    if backend == "auto" and not compiled:
        return "numpy"
    require(hidden_act, "numba", "hidden_activation")
    require(output_act, "numba", "output_activation")
    losses.require(criterion, "numba")
    return "numba"


def resolve_kernel(backend: str, T: int, B: int, D: int, H: int, O: int) -> str:
    """'numpy' or one of KERNELS."""
    if backend == "numpy":
        return "numpy"
    return choose_kernel(T, B, D, H, O)


class NumpyRunner:
    """The reference engine, one segment at a time (with a carry from later segments)."""

    kernel = "numpy"
    nonfinite = False

    def __init__(self, p, hidden_act: Activation, output_act: Activation, criterion: Loss, c: float, trunc: int,
                 seg_len: int, B: int, dtype):
        self.p, self.hidden_act, self.output_act, self.c, self.dtype = p, hidden_act, output_act, c, dtype
        self.criterion = criterion
        self.grad_sum = {k: np.zeros(v.shape, dtype) for k, v in p._asdict().items()}

    def segment(self, x, y, h_start, carry, need_grad: bool):
        p, f, g, E = self.p, self.hidden_act, self.output_act, self.criterion
        fwd = engine.forward(p, x, h_start, f, g)
        loss = float(self.c * np.sum(E.value(fwd.u, fwd.y_pred, y)))
        if need_grad:
            du = E.delta(fwd.u, fwd.y_pred, y, g, self.c).astype(self.dtype)  # (L, B, O)
            dh_direct = mm(du, p.w)  # (L, B, H)
            dh_direct[-1] += carry.astype(self.dtype)  # dLoss/dh_L from the later segments
            dz = engine.bptt_full(p.w_h, dh_direct, f.deriv(fwd.h[1:]))  # (L, B, H)
            carry[...] = mm(dz[0], p.w_h)  # dLoss/dh_start
            for k, v in engine.weight_grads(x, fwd.h, dz, du).items():
                self.grad_sum[k] += v
        return loss, fwd.h[-1].copy()

    def grads(self):
        return {k: v.copy() for k, v in self.grad_sum.items()}


class Network(NamedTuple):
    """What dispatch needs of a network, made once (``network``; an RNN keeps one with its parameters).

    p        engine.Params, the five parameters
    theta    the same five as one flat array in PARAM_NAMES order, of which p's arrays are views (the
             model's storage: the seed's compiled call takes it as one argument); None: made from p
             when that call needs it
    f, g     the hidden and output activations; criterion the loss (losses.py)
    codes    (f, g, loss) codes of their compiled branches; None if one of them has none
    scalar   whether it is the seed's network, D = H = O = 1
    """

    p: Any
    f: Activation
    g: Activation
    criterion: Loss
    theta: Any = None
    codes: tuple[int, int, int] | None = None
    scalar: bool = False


def network(p, f: Activation, g: Activation, criterion: Loss, theta: np.ndarray | None = None) -> Network:
    codes = (f.code, g.code, criterion.code)
    scalar = p.w.shape == _ONE and p.w_x.shape == _ONE
    return Network(p, f, g, criterion, theta, None if None in codes else codes, scalar)


def loss_and_grad(net: Network, x, y, h0, reduction: str = "mean", truncate: int | None = None, checkpoint: Any = None,
                  backend: str = "numpy", need_dh0: bool = True):
    """(loss, gradients, dLoss/dh_0 or None) by the implementation that suits the sizes and options.

    net the network (``network``); x (T, B, D), y (T, B, O), h0 (B, H) or None (zeros), validated,
    C-contiguous, in one dtype (``RNN`` makes them so); backend one of BACKENDS (a compiled kernel
    refuses an activation or loss without a compiled version); need_dh0=False lets the
    whole-sequence calls (which do not compute dLoss/dh_0) run.
    Raises ``NonFinite`` (a BPTTError) if the result is not finite.
    """
    if not need_dh0 and checkpoint is None and backend != "numpy":
        # one compiled call for the whole sequence (kept lean: the seed's call is a few microseconds)
        codes = net.codes
        if codes is not None:
            K = _kernels or _import_kernels()
            fcode, gcode, lcode = codes
            if lcode in K.LOSS_CODES:
                T, B, D = x.shape
                dtype = x.dtype
                c = loss_scale(T, B, reduction)
                if B == 1 and net.scalar and (truncate is None or truncate >= T):
                    theta = net.theta
                    if theta is None:
                        theta = np.concatenate([a.reshape(-1) for a in net.p]).astype(dtype)
                    g5 = np.empty(_FIVE, dtype)  # (5, 1, 1): the seed's five gradients in one kernel argument
                    loss = K.scalar_fast(x, y, theta, 0.0 if h0 is None else float(h0[0, 0]), c, fcode, gcode, lcode,
                                         g5)
                    if loss == loss:
                        return loss, {"w": g5[0], "w_x": g5[1], "w_h": g5[2], "b1": g5[3, 0], "b2": g5[4, 0]}, None
                else:
                    p = net.p
                    w = p.w
                    O, H = w.shape
                    kind = fast_kernel(B, H, dtype != np.float64)
                    if kind is not None:
                        if h0 is None:
                            h0 = np.zeros((B, H), dtype)
                        gw, gwx, gwh, gb1, gb2 = (np.empty((O, H), dtype), np.empty((H, D), dtype),
                                                  np.empty((H, H), dtype), np.empty(H, dtype), np.empty(O, dtype))
                        call = K.lanes_kernel if kind == "lanes" else K.batched_fast
                        loss = call(x, y, h0, w, p.w_x, p.w_h, p.b1, p.b2, c,
                                    T if truncate is None or truncate >= T else truncate, fcode, gcode, lcode,
                                    gw, gwx, gwh, gb1, gb2)
                        if loss == loss:
                            return loss, {"w": gw, "w_x": gwx, "w_h": gwh, "b1": gb1, "b2": gb2}, None
                # not finite: the segment runners below compute it again and explain
    p, f, g, criterion = net.p, net.f, net.g, net.criterion
    T, B, D = x.shape
    O, H = p.w.shape
    if h0 is None:
        h0 = np.zeros((B, H), x.dtype)
    kernel = resolve_kernel(choose_backend(backend, f, g, criterion), T, B, D, H, O)
    return run_kernel(p, x, y, h0, f, g, criterion, reduction, truncate, checkpoint, kernel)


def recurrence_loaded() -> bool:
    """Whether this process has imported a module of compiled recurrences (so one more costs little)."""
    return any(name in sys.modules for name in _RECURRENCE_MODULES)


def forward(p, x, h0, f: Activation, g: Activation) -> engine.Forward:
    """``engine.forward(p, x, h0, f, g)``: x (T, B, D), h0 (B, H).  By its compiled loop (the same bits,
    tests/test_curvature_kernels.py) where compiled recurrences are loaded already or the work is large;
    otherwise the engine's own loop."""
    T, B, _ = x.shape
    if recurrence_loaded() or T * B * p.w_h.shape[0] >= COMPILED_FORWARD_MIN_WORK:
        from . import curvature_kernels

        return curvature_kernels.forward(p, x, h0, f, g)
    return engine.forward(p, x, h0, f, g)


_ONE = (1, 1)
_FIVE = (5, 1, 1)
_kernels = None  # bptt.kernels once imported (it imports numba, so only when a compiled call is made)


def _import_kernels():
    global _kernels
    from . import kernels

    _kernels = kernels
    return kernels


def run_kernel(p, x, y, h0, f: Activation, g: Activation, criterion: Loss, reduction: str = "mean",
               truncate: int | None = None, checkpoint: Any = None, kernel: str = "numpy"):
    """(loss, gradients, dLoss/dh_0) by the named kernel ('numpy' or one of KERNELS), checkpointed or not.

    Arguments as ``loss_and_grad``.  Raises ``NonFinite`` if the result is not finite.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is refused in one line, not warned
        if kernel == "numpy" and checkpoint is None:
            fwd = engine.forward(p, x, h0, f, g)
            loss = engine.loss(fwd, y, criterion, reduction)
            grads, dh0 = engine.backward(p, x, fwd, y, f, g, criterion, reduction, truncate)
            nonfinite = False
        else:
            loss, grads, dh0, nonfinite = _run_segments(p, x, y, h0, f, g, criterion, reduction, truncate,
                                                        checkpoint, kernel)
    if nonfinite or not np.isfinite(loss) or not all(np.all(np.isfinite(v)) for v in grads.values()):
        raise NonFinite(
            "the loss or its gradients overflowed to a non-finite value; scale the inputs or weights down "
            "(relu hidden units can grow without bound)"
        )
    return float(loss), grads, dh0


def _run_segments(p, x, y, h0, f, g, criterion, reduction, truncate, checkpoint, kernel):
    """(loss, grads, dLoss/dh_0, whether a kernel saw a non-finite value): a runner, segment by segment."""
    T, B, _ = x.shape
    dtype = x.dtype
    if kernel == "numpy":
        runner_cls = NumpyRunner
    else:
        from .kernels import RUNNERS

        runner_cls = RUNNERS[kernel]
        # C-contiguous, writable, one dtype: keeps the compiled signatures to one per dtype
        x, y, h0 = (np.require(a, dtype, ["C", "W"]) for a in (x, y, h0))
        p = engine.Params(*(np.require(a, dtype, ["C", "W"]) for a in p))
    c = engine.loss_scale(T, B, reduction)
    k = segment_length(T, checkpoint)
    trunc = T if truncate is None else int(truncate)
    run = runner_cls(p, f, g, criterion, c, trunc, k, B, dtype)
    H = p.w_h.shape[0]
    carry = np.zeros((B, H))  # (B, H) float64: dLoss/dh at the segment's end, from later steps
    if k >= T:
        loss, _ = run.segment(x, y, h0, carry, True)
    else:
        starts = list(range(0, T, k))
        ckpt = np.empty((len(starts), B, H), dtype)  # (T/k, B, H): h at each segment start
        h = h0
        loss = 0.0
        for i, s in enumerate(starts):
            ckpt[i] = h
            part, h = run.segment(x[s : s + k], y[s : s + k], h, carry, False)
            loss += part
        for i in range(len(starts) - 1, -1, -1):
            s = starts[i]
            run.segment(x[s : s + k], y[s : s + k], ckpt[i], carry, True)
    return loss, run.grads(), carry.astype(dtype), run.nonfinite
