r"""The seed's RNN as a PyTorch layer whose backward pass is this library's BPTT.

PyTorch's ``nn.RNN`` offers tanh and relu only; users who want the seed's
sigmoid network hand-roll a Python loop and let autograd record every step.
``SigmoidRNN`` runs the recurrence without recording a graph and supplies the
gradient itself (a ``torch.autograd.Function``), with the formulas of
``bptt.engine`` written in torch operations, so it runs on whatever device
its tensors live on and composes with any loss, model or optimizer after it.

    z_t  = w_x x_t + w_h h_{t-1} + b1,   h_t = f(z_t)        t = 1..T
    u_t  = w h_t + b2,                   y'_t = g(u_t)

Backward, for an arbitrary upstream gradient G_t = dL/dy'_t (T, B, O) and
G_h = dL/dh_T (B, H) (the loss is whatever the caller computes from y'):

    du_t = G_t * g'(u_t)
    dh_t = du_t w + dz_{t+1} w_h  (+ G_h at t = T)      dz_{T+1} = 0
    dz_t = dh_t * f'(z_t)
    dL/dw = sum_t du_t^T h_t      dL/db2 = sum_t du_t
    dL/dw_x = sum_t dz_t^T x_t    dL/dw_h = sum_t dz_t^T h_{t-1}    dL/db1 = sum_t dz_t
    dL/dx_t = dz_t w_x            dL/dh_0 = dz_1 w_h

f' and g' are taken from the outputs h_t, y'_t (the activation table's
derivative-from-output), so z and u are never stored.  f, g and f', g' are the
table's torch parts (``activations.Activation.torch_value`` / ``torch_deriv``);
this module defines no activation of its own.

Options (as in the numpy engine):
  truncate=k     each error term's signal (the one entering at step t through
                 y'_t, or through h_T) goes back at most k steps, t-k+1..t;
                 the same semantics as ``engine.bptt_truncated``.
  checkpoint=k   store only every k-th hidden state (True or "sqrt": k = ceil(sqrt T));
                 the backward pass recomputes each segment's states from its
                 checkpoint.  Stored hidden states: T/k + k instead of T.

``import bptt`` never imports this module (it imports torch); use
``import bptt.torch``.  The ``import torch`` below is absolute, so it is the
real PyTorch, not this file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from . import activations, engine
from .activations import Activation
from .dispatch import segment_length
from .validation import BPTTError, check_checkpoint, check_sizes, check_truncate, short_repr

__all__ = ["SigmoidRNN", "sigmoid_rnn", "torch_value", "torch_deriv"]


# ---------------------------------------------------------------- activations, from the one table
def _activation(name: Any, role: str) -> Activation:
    """The table's record for ``name`` in ``role`` ('hidden' or 'output'); refused if it has no torch version."""
    act = activations.get(name, activations.names(role), f"{role}_activation")
    return activations.require(act, "torch", f"{role}_activation")


def _record(act: Activation | str) -> Activation:
    return activations.require(activations.get(act) if isinstance(act, str) else act, "torch")


def torch_value(act: Activation | str, z: torch.Tensor) -> torch.Tensor:
    """f(z) for the table's activation ``act`` (a record or its name), elementwise, as a new tensor."""
    return _record(act).torch_value(z)


def torch_deriv(act: Activation | str, a: torch.Tensor) -> torch.Tensor:
    """f'(z) given a = f(z), elementwise: the table's derivative-from-output on tensors."""
    return _record(act).torch_deriv(a)


# ---------------------------------------------------------------- the autograd Function
def _run(x, h_start, w_x, w_h, b1, f: Activation, h_out=None):
    """h_{s+1..s+L} from h_s.  x (L, B, D), h_start (B, H).  Writes into / returns h_out (L+1, B, H)."""
    L, B, _ = x.shape
    H = w_h.shape[0]
    if h_out is None:
        h_out = x.new_empty((L + 1, B, H))  # (L+1, B, H)
    h_out[0] = h_start
    # the input projection w_x x_t + b1 for all steps in one product, written where h_1..h_L go:
    # each step then adds w_h h_{t-1} and applies f in place, so z is never stored
    torch.matmul(x, w_x.t(), out=h_out[1:]).add_(b1)  # (L, B, H)
    w_hT = w_h.t()
    value = f.torch_value
    hs = h_out.unbind(0)  # per-step views, made once (indexing costs per call)
    for t in range(L):
        z = hs[t + 1].addmm_(hs[t], w_hT)  # z_t = w_x x_t + b1 + w_h h_{t-1}
        value(z, z)  # h_t = f(z_t)
    return h_out


def _outputs(h, w, b2, g: Activation, out):
    """y'_t = g(w h_t + b2).  h (L, B, H) -> out (L, B, O)."""
    u = torch.matmul(h, w.t()).add_(b2)  # (L, B, O)
    return g.torch_value(u, out)


class _BPTT(torch.autograd.Function):
    """(x, h0, w_x, w_h, b1, w, b2) -> (y_pred (T, B, O), h_T (B, H)), backward by hand-written BPTT."""

    @staticmethod
    def forward(ctx, x, h0, w_x, w_h, b1, w, b2, f, g, checkpoint, truncate):
        T, B, _ = x.shape
        H, O = w_h.shape[0], w.shape[0]
        y = x.new_empty((T, B, O))  # (T, B, O)
        if checkpoint is None:
            h = _run(x, h0, w_x, w_h, b1, f)  # (T+1, B, H): every state, kept for backward
            _outputs(h[1:], w, b2, g, y)
            hT = h[T].clone()
            stored = h
        else:
            k = checkpoint
            starts = list(range(0, T, k))
            stored = x.new_empty((len(starts), B, H))  # (T/k, B, H): h at each segment start
            buf = x.new_empty((k + 1, B, H))  # (k+1, B, H): one segment's states, reused
            h_cur = h0
            for i, s in enumerate(starts):
                e = min(s + k, T)
                stored[i] = h_cur
                seg = _run(x[s:e], h_cur, w_x, w_h, b1, f, buf[: e - s + 1])
                _outputs(seg[1:], w, b2, g, y[s:e])
                h_cur = seg[e - s]
            hT = h_cur.clone()
        ctx.save_for_backward(x, w_x, w_h, b1, w, stored, y)
        ctx.f, ctx.g, ctx.checkpoint, ctx.truncate = f, g, checkpoint, truncate
        ctx.set_materialize_grads(False)
        return y, hT

    @staticmethod
    def backward(ctx, gy, ghT):
        # create_graph=True runs backward with grad mode on; this backward records no graph, so a
        # second derivative through it would be silently missing: refuse instead
        if torch.is_grad_enabled():
            raise BPTTError(DOUBLE_BACKWARD_MESSAGE)
        x, w_x, w_h, b1, w, stored, y = ctx.saved_tensors
        f, g, k, truncate = ctx.f, ctx.g, ctx.checkpoint, ctx.truncate
        T, B, D = x.shape
        H = w_h.shape[0]
        if gy is None:
            gy = torch.zeros_like(y)
        du = g.torch_jvp(y, gy)  # (T, B, O): du_t = g'(u_t)^T G_t
        need = ctx.needs_input_grad
        if truncate is not None and truncate < T:
            h = stored  # (T+1, B, H): truncate excludes checkpointing
            dh_direct = torch.matmul(du, w)  # (T, B, H): dL/dh_t through y'_t only
            if ghT is not None:
                dh_direct[T - 1] += ghT
            dz, dh0 = _truncated(w_h, dh_direct, f.torch_deriv(h[1:]), truncate)
            segments = [(0, T, h, dz)]
        else:
            segments = _full_segments(x, w_x, w_h, b1, w, stored, du, ghT, f, k)
            dh0 = None
        gb2 = du.sum(dim=(0, 1)) if need[6] else None
        gx = torch.empty_like(x) if need[0] else None
        acc: dict[str, torch.Tensor] = {}

        def add(name: str, value: torch.Tensor) -> None:  # the first segment assigns, later ones add
            if name in acc:
                acc[name] += value
            else:
                acc[name] = value

        carry = None
        for s, e, h, dz in segments:  # each h (L+1, B, H) = h_s..h_e, dz (L, B, H)
            L = e - s
            dz2 = dz.reshape(L * B, H)  # (L B, H)
            if need[5]:
                add("w", du[s:e].reshape(L * B, -1).t() @ h[1:].reshape(L * B, H))  # (O, H)
            if need[2]:
                add("w_x", dz2.t() @ x[s:e].reshape(L * B, D))  # (H, D)
            if need[3]:
                add("w_h", dz2.t() @ h[:-1].reshape(L * B, H))  # (H, H)
            if need[4]:
                add("b1", dz2.sum(0))  # (H,)
            if gx is not None:
                torch.matmul(dz, w_x, out=gx[s:e])  # (L, B, D)
            carry = dz[0]
        gw, gw_x, gw_h, gb1 = (acc.get(k) for k in ("w", "w_x", "w_h", "b1"))
        if dh0 is None:
            dh0 = carry @ w_h  # (B, H): dL/dh_0 = dz_1 w_h
        return gx, (dh0 if need[1] else None), gw_x, gw_h, gb1, gw, gb2, None, None, None, None


# Without checkpointing, the backward pass still walks the stored states in blocks of at most
# this many (B, H) elements, so its temporaries (dz, f') stay a block, not a whole sequence.
_BLOCK_ELEMENTS = 1 << 20


def _full_segments(x, w_x, w_h, b1, w, stored, du, ghT, f, k):
    """Full BPTT, last block first; yields (s, e, h_s..h_e (L+1, B, H), dz_{s+1..e} (L, B, H)).

    Without checkpointing (k None) ``stored`` holds every state and the blocks are views of it;
    with checkpointing each block is one segment, recomputed from its checkpoint.
    """
    T, B, _ = x.shape
    H = w_h.shape[0]
    step = k if k is not None else max(1, min(T, _BLOCK_ELEMENTS // (B * H)))
    starts = list(range(0, T, step))
    buf = None
    carry = None  # (B, H): dz_{e+1} w_h, the gradient entering the block from the future
    for i in range(len(starts) - 1, -1, -1):
        s = starts[i]
        e = T if i == len(starts) - 1 else starts[i + 1]
        L = e - s
        if k is None:
            h = stored[s : e + 1]  # (L+1, B, H): a view
        else:
            if buf is None:
                buf = x.new_empty((k + 1, B, H))  # (k+1, B, H)
            h = _run(x[s:e], stored[i], w_x, w_h, b1, f, buf[: L + 1])  # recompute h_s..h_e
        dz = torch.matmul(du[s:e], w)  # (L, B, H): dL/dh_t through y'_t only; becomes dz in place
        if e == T and ghT is not None:
            dz[L - 1] += ghT
        fprime = f.torch_deriv(h[1:])  # (L, B, H): f'(z_t) from h_t
        dzs, fps = dz.unbind(0), fprime.unbind(0)
        if carry is not None:
            dzs[L - 1].addmm_(carry, w_h)
        dzs[L - 1].mul_(fps[L - 1])
        for t in range(L - 2, -1, -1):
            dzs[t].addmm_(dzs[t + 1], w_h).mul_(fps[t])  # dz_t = (dE_t/dh_t + dz_{t+1} w_h) f'(z_t)
        carry = dzs[0]
        del fprime, fps
        yield s, e, h, dz


def _truncated(w_h, dh_direct, fprime, k):
    """Each error term's signal goes back at most k steps; O(T k) work in k matrix products.

    A_j[s] = dE_{s+j}/dh_s (the signal of the term at step s+j after j steps back);
    dz_s = sum_{j<k} A_j[s] f'(z_s).  Same sum as ``engine.bptt_truncated``, vectorised over t.
    """
    T = dh_direct.shape[0]
    dz = torch.zeros_like(dh_direct)  # (T, B, H)
    dh0 = torch.zeros_like(dh_direct[0])  # (B, H)
    A = dh_direct  # (T - j, B, H)
    for j in range(min(k, T)):
        n = T - j
        Z = A * fprime[:n]  # (n, B, H): dE_{s+j}/dz_s
        dz[:n] += Z
        dh0.addmm_(Z[0], w_h)  # the term at step j reaches h_0 through z_1
        A = torch.matmul(Z[1:], w_h)  # (n-1, B, H): one step further back
    return dz, dh0


# ---------------------------------------------------------------- functional form and checks
def _segment_length(checkpoint: Any, T: int) -> int | None:
    """Steps between stored states, as the numpy engine counts them; None: store all."""
    k = segment_length(T, checkpoint)
    return None if k >= T else k


def sigmoid_rnn(
    x: torch.Tensor,
    h0: torch.Tensor | None,
    w_x: torch.Tensor,
    w_h: torch.Tensor,
    b1: torch.Tensor,
    w: torch.Tensor,
    b2: torch.Tensor,
    hidden_activation: str = "sigmoid",
    output_activation: str = "sigmoid",
    checkpoint: Any = None,
    truncate: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Functional form of ``SigmoidRNN.forward``.  Returns (y_pred, h_T).

    x (T, B, D), h0 (B, H) or None (zeros), w_x (H, D), w_h (H, H), b1 (H,), w (O, H), b2 (O,).
    y_pred (T, B, O), h_T (B, H).  Differentiable in all seven tensors.
    """
    f = _activation(hidden_activation, "hidden")
    g = _activation(output_activation, "output")
    tr = check_truncate(truncate)
    ck = check_checkpoint(checkpoint, tr)
    params = {"w_x": w_x, "w_h": w_h, "b1": b1, "w": w, "b2": b2}
    for name, t in params.items():
        if not isinstance(t, torch.Tensor):
            raise BPTTError(f"{name} must be a torch.Tensor, got {type(t).__name__}; convert it with torch.as_tensor")
        if t.dtype != w_h.dtype or not t.is_floating_point():
            raise BPTTError(f"{name} has dtype {t.dtype} but w_h is {w_h.dtype}; give all parameters one floating dtype")
        if t.device != w_h.device:
            raise BPTTError(f"{name} is on {t.device} but w_h is on {w_h.device}; put all parameters on one device")
    want = engine.param_shapes(w_x.shape[1], w_x.shape[0], w.shape[0])  # D, H, O
    for name, shape in want.items():
        if tuple(params[name].shape) != shape:
            raise BPTTError(f"{name} must have shape {shape}, got {tuple(params[name].shape)}")
    _check_finite("x", x)
    _check_finite("h0", h0)
    return _call(x, h0, w_x, w_h, b1, w, b2, f, g, ck, tr)


DOUBLE_BACKWARD_MESSAGE = (
    "bptt.torch's backward pass is not differentiable (create_graph=True, double backward, gradient penalties, "
    "Hessians); for second derivatives run the recurrence as a plain autograd loop"
)


def _check_float_dtype(dtype: Any) -> torch.dtype | None:
    """None (torch's default dtype) or a floating torch dtype."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise BPTTError(f"dtype must be a floating torch dtype such as torch.float32 or torch.float64, got {short_repr(dtype)}")
    return dtype


def _check_finite(name: str, t: Any) -> None:
    """One isfinite pass over a tensor t (a device sync on CUDA); the numpy RNN's message on failure.

    Called on the caller's x and h0 as given (before any reshaping), so the index is theirs.
    Anything not a tensor passes: ``_call`` refuses it by type.
    """
    if isinstance(t, torch.Tensor) and not bool(torch.isfinite(t).all()):
        bad = tuple((~torch.isfinite(t)).nonzero()[0].tolist())
        where = f" at index {bad}" if t.ndim else ""
        raise BPTTError(f"{name} contains {t[bad].item()}{where}; every value must be finite (no NaN or inf)")


def _call(x, h0, w_x, w_h, b1, w, b2, f: Activation, g: Activation, ck, tr):
    """Check x and h0 against the (already checked) parameters, then run the Function."""
    for name, t in (("x", x), ("h0", h0)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise BPTTError(f"{name} must be a torch.Tensor, got {type(t).__name__}; convert it with torch.as_tensor")
        if t.dtype != w_h.dtype:
            raise BPTTError(f"{name} has dtype {t.dtype} but the parameters are {w_h.dtype}; convert it with .to({w_h.dtype})")
        if t.device != w_h.device:
            raise BPTTError(f"{name} is on {t.device} but the parameters are on {w_h.device}; move it with .to('{w_h.device}')")
    H, D = w_x.shape
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] != D:
        raise BPTTError(f"x must be (T, B, {D}) with T, B >= 1, got shape {tuple(x.shape)}")
    T, B, _ = x.shape
    if h0 is None:
        h0 = x.new_zeros((B, H))
    elif tuple(h0.shape) == (H,):
        h0 = h0.expand(B, H)  # one initial state for every sequence; autograd sums its gradient
    elif tuple(h0.shape) != (B, H):
        raise BPTTError(f"h0 must have shape ({B}, {H}) or ({H},), got {tuple(h0.shape)}")
    y, hT = _BPTT.apply(x.contiguous(), h0.contiguous(), w_x, w_h, b1, w, b2, f, g, _segment_length(ck, T), tr)
    if not bool(torch.isfinite(y.detach()).all()):  # one pass (a device sync on CUDA), as for x: never a silent NaN
        for name, t in (("w_x", w_x), ("w_h", w_h), ("b1", b1), ("w", w), ("b2", b2)):
            _check_finite(name, t.detach())
        raise BPTTError("the forward pass overflowed to a non-finite value; scale the inputs or weights down "
                        "(relu hidden units can grow without bound)")
    return y, hT


# ---------------------------------------------------------------- the module
class SigmoidRNN(nn.Module):
    """The seed's RNN as an ``nn.Module``, with the hand-derived BPTT as its backward pass.

        h_t  = f(w_x x_t + w_h h_{t-1} + b1)     f: hidden_activation (sigmoid, tanh, relu)
        y'_t = g(w h_t + b2)                     g: output_activation (sigmoid, identity)

    Parameters (``nn.Parameter``, the names used everywhere in bptt): w_x (H, D), w_h (H, H),
    b1 (H,), w (O, H), b2 (O,), initialised Uniform(-1/sqrt(H), 1/sqrt(H)) like ``nn.RNN``.
    ``forward(x, h0=None)``: x (T, B, D) or unbatched (T, D); h0 (B, H), (H,) or None (zeros).
    Returns y_pred (T, B, O) (or (T, O)); with ``return_hidden=True`` also h_T (B, H) (or (H,)).
    checkpoint: None, True/"sqrt" (segments of ceil(sqrt T) steps) or a segment length.
    truncate: None (full BPTT) or k, each error term backpropagated at most k steps.

    Refused with a one-line BPTTError, as the numpy ``bptt.RNN`` refuses them: a dtype that is
    not a floating torch dtype (``dtype=torch.int32``); an activation not in the table, or whose
    table record has no torch version; NaN or inf in x or h0 (one ``torch.isfinite`` pass each
    per call).  The backward pass is first order only: ``create_graph=True`` through this layer
    (double backward, gradient penalties) raises BPTTError instead of silently dropping the
    second-order terms.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        hidden_activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        checkpoint: Any = None,
        truncate: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: Any = None,
    ):
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = check_sizes(input_size, hidden_size, output_size)
        self._f = _activation(hidden_activation, "hidden")
        self._g = _activation(output_activation, "output")
        self.truncate = check_truncate(truncate)
        self.checkpoint = check_checkpoint(checkpoint, self.truncate)
        H, D, O = self.hidden_size, self.input_size, self.output_size
        kw = {"dtype": _check_float_dtype(dtype), "device": device}
        k = 1.0 / math.sqrt(H)
        self.w_x = nn.Parameter(torch.empty((H, D), **kw).uniform_(-k, k))
        self.w_h = nn.Parameter(torch.empty((H, H), **kw).uniform_(-k, k))
        self.b1 = nn.Parameter(torch.empty((H,), **kw).uniform_(-k, k))
        self.w = nn.Parameter(torch.empty((O, H), **kw).uniform_(-k, k))
        self.b2 = nn.Parameter(torch.empty((O,), **kw).uniform_(-k, k))

    @property
    def hidden_activation(self) -> str:
        return self._f.name

    @property
    def output_activation(self) -> str:
        return self._g.name

    @property
    def hidden_act(self) -> Activation:
        """f's record in the activation table."""
        return self._f

    @property
    def output_act(self) -> Activation:
        """g's record in the activation table."""
        return self._g

    def extra_repr(self) -> str:
        s = (f"input_size={self.input_size}, hidden_size={self.hidden_size}, output_size={self.output_size}, "
             f"hidden_activation={self.hidden_activation!r}, output_activation={self.output_activation!r}")
        if self.checkpoint is not None:
            s += f", checkpoint={self.checkpoint!r}"
        if self.truncate is not None:
            s += f", truncate={self.truncate}"
        return s

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, return_hidden: bool = False):
        if not isinstance(x, torch.Tensor):
            raise BPTTError(f"x must be a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor")
        _check_finite("x", x)
        _check_finite("h0", h0)
        batched = x.ndim == 3
        if x.ndim == 2:
            x = x.unsqueeze(1)  # (T, 1, D)
            if h0 is not None and isinstance(h0, torch.Tensor) and h0.ndim == 1:
                h0 = h0.unsqueeze(0)  # (1, H)
        elif x.ndim != 3:
            raise BPTTError(f"x must be (T, D) or (T, B, D), got shape {tuple(x.shape)}")
        # sizes, activations and options were checked in __init__; only the inputs are checked per call
        y, hT = _call(x, h0, self.w_x, self.w_h, self.b1, self.w, self.b2, self._f, self._g, self.checkpoint, self.truncate)
        if not batched:
            y, hT = y[:, 0], hT[0]
        return (y, hT) if return_hidden else y

    # ------------------------------------------------------------ numpy converters
    @classmethod
    def from_numpy(cls, rnn: Any, checkpoint: Any = None, truncate: int | None = None,
                   dtype: torch.dtype | None = None, device: Any = None) -> "SigmoidRNN":
        """A layer with ``rnn``'s sizes, activations and parameters (a ``bptt.RNN``); dtype follows rnn's."""
        from .model import RNN

        if not isinstance(rnn, RNN):
            raise BPTTError(f"from_numpy needs a bptt.RNN, got {type(rnn).__name__}")
        dt = dtype if dtype is not None else (torch.float64 if rnn.dtype == np.float64 else torch.float32)
        m = cls(rnn.input_size, rnn.hidden_size, rnn.output_size, rnn.hidden_activation, rnn.output_activation,
                checkpoint, truncate, dtype=dt, device=device)
        with torch.no_grad():
            for name, p in m.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(getattr(rnn, name))))
        return m

    def to_numpy(self) -> Any:
        """The numpy ``bptt.RNN`` with this layer's sizes, activations and (copied) parameters."""
        from .model import RNN

        dt = self.w_h.dtype
        if dt not in (torch.float32, torch.float64):
            raise BPTTError(f"to_numpy supports float32 and float64 parameters, got {dt}; call .float() or .double() first")
        rnn = RNN(self.input_size, self.hidden_size, self.output_size, self.hidden_activation,
                  self.output_activation, dtype=np.float64 if dt == torch.float64 else np.float32)
        rnn.set_params(**{name: p.detach().cpu().numpy() for name, p in self.named_parameters()})
        return rnn
