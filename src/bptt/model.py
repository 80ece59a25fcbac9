"""The public ``RNN``: validates input at the boundary, dispatches to the engine.

No math lives here; see ``engine.py`` for the formulas.  This is the one front door: every input is
checked and put in one canonical form here (x (T, B, D), y (T, B, O), h0 (B, H), C-contiguous, in
the model's dtype; h0 None for zeros where dispatch takes it), and goes down to ``dispatch.py``, which
picks the implementation; nothing below reads the user's forms.  The five parameters are views of one
flat array, the model's storage (``_own``).  ``loss_and_grad`` converts without scanning for NaN or inf (that scan would
cost the seed's call a third of its time): every implementation reports a non-finite result, and
only then are the inputs scanned, so a NaN input still gets its own one-line message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import activations, dispatch, engine, losses
from .validation import (BPTTError, check_decomposition_size, check_dtype, check_float_array, check_network_size,
                         check_reduction, check_seed, check_sizes, check_truncate)
from .engine import PARAM_NAMES



@dataclass(frozen=True)
class ForwardResult:
    """All intermediates of ``RNN.forward``.  Shapes for batched input; unbatched drops B.

    z (T, B, H)       hidden pre-activations w_x x_t + w_h h_{t-1} + b1
    h (T+1, B, H)     h_0..h_T
    u (T, B, O)       output pre-activations w h_t + b2
    y_pred (T, B, O)  y'_1..y'_T
    """

    z: np.ndarray
    h: np.ndarray
    u: np.ndarray
    y_pred: np.ndarray


def _parameter(name: str, doc: str) -> property:
    """RNN.<name>: the parameter itself (a view of the model's storage); setting it is shape-checked and writes
    into that storage.  (Properties, not __getattr__: a class with __getattr__ makes every attribute read slower.)"""

    def get(self: "RNN") -> np.ndarray:
        return self._params[name]

    def set_(self: "RNN", value: Any) -> None:
        self._params[name][...] = self._check_param(name, value)

    return property(get, set_, doc=doc)


class RNN:
    """The seed's recurrent network, any size.

        h_t  = f(w_x x_t + w_h h_{t-1} + b1)     f: hidden_activation (sigmoid, tanh, relu)
        y'_t = g(w h_t + b2)                     g: output_activation (sigmoid, identity, softmax)
        E_t  = E(y'_t, y_t)                      E: loss (squared_error = the seed's 1/2 (y - y')^2,
                                                    bce with a sigmoid g, cross_entropy with softmax)

    Parameters (attributes, settable, shape-checked): w_x (H, D), w_h (H, H),
    b1 (H,), w (O, H), b2 (O,).  Inputs x are (T, D) or batched (T, B, D);
    for a model with D = 1 a 1-D x of length T is accepted too.  Targets y are
    shaped like the outputs; for cross_entropy also integer class labels, (T,) or
    (T, B).
    """

    w = _parameter("w", "(O, H) the output weights")
    w_x = _parameter("w_x", "(H, D) the input weights")
    w_h = _parameter("w_h", "(H, H) the recurrent weights")
    b1 = _parameter("b1", "(H,) the hidden bias")
    b2 = _parameter("b2", "(O,) the output bias")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        hidden_activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        dtype: Any = np.float64,
        seed: int | None = None,
        loss: str = losses.DEFAULT,
    ):
        self.input_size, self.hidden_size, self.output_size = check_sizes(input_size, hidden_size, output_size)
        self._f = activations.get(hidden_activation, activations.names("hidden"), "hidden_activation")
        self._g = activations.get(output_activation, activations.names("output"), "output_activation")
        if not self._g.elementwise and self.output_size < 2:
            raise BPTTError(f"output_activation {output_activation!r} acts over the outputs and needs at least 2 "
                            f"(its value for one output is always 1), got output_size {self.output_size}; give "
                            "output_size >= 2 (one per class), or a sigmoid output for one probability")
        self._criterion = losses.pair(losses.get(loss), self._g)
        dt = self.dtype = check_dtype(dtype)
        check_network_size(self.input_size, self.hidden_size, self.output_size, dt.itemsize)  # before allocating
        seed = check_seed(seed)
        # Uniform(-1/sqrt(H), 1/sqrt(H)), as PyTorch's RNN initialises.
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.hidden_size)
        shapes = self.param_shapes()
        self._own(np.empty(sum(math.prod(v) for v in shapes.values()), dt))
        for name in ("w_x", "w_h", "b1", "w", "b2"):
            self._params[name][...] = rng.uniform(-k, k, size=shapes[name]).astype(dt)

    def _own(self, theta: np.ndarray) -> None:
        """Store the five parameters in ``theta`` (flat, in PARAM_NAMES order): each parameter is a view
        of it, so the compiled seed's call takes one array for all five (dispatch.loss_and_grad)."""
        shapes = self.param_shapes()
        params, o = {}, 0
        for name in PARAM_NAMES:
            n = math.prod(shapes[name])
            params[name] = theta[o : o + n].reshape(shapes[name])
            o += n
        self._theta = theta
        self._params = params
        self._p = engine.Params(**params)
        self._net = dispatch.network(self._p, self._f, self._g, self._criterion, theta)

    # ---------------------------------------------------------------- parameters
    @classmethod
    def scalar(
        cls,
        w: float = 1.0,
        w_x: float = 1.0,
        w_h: float = 1.0,
        b1: float = 1.0,
        b2: float = 1.0,
        hidden_activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        dtype: Any = np.float64,
        loss: str = losses.DEFAULT,
    ) -> "RNN":
        """The seed's one-unit network (D = H = O = 1), in the seed's notation."""
        m = cls(1, 1, 1, hidden_activation, output_activation, dtype, loss=loss)
        for name, v in (("w", w), ("w_x", w_x), ("w_h", w_h), ("b1", b1), ("b2", b2)):
            setattr(m, name, np.full(m.param_shapes()[name], _scalar(name, v)))
        return m

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return engine.param_shapes(self.input_size, self.hidden_size, self.output_size)

    @property
    def hidden_activation(self) -> str:
        return self._f.name

    @property
    def output_activation(self) -> str:
        return self._g.name

    @property
    def loss_name(self) -> str:
        """The loss's name in the loss table ('squared_error', 'bce', 'cross_entropy')."""
        return self._criterion.name

    @property
    def criterion(self) -> losses.Loss:
        """E's record in the loss table (value, dE/du, curvature, other backends)."""
        return self._criterion

    @property
    def hidden_act(self) -> activations.Activation:
        """f's record in the activation table (value, derivative from the output, other backends)."""
        return self._f

    @property
    def output_act(self) -> activations.Activation:
        """g's record in the activation table."""
        return self._g

    def params(self) -> dict[str, np.ndarray]:
        """Copies of the five parameters, by name."""
        return {k: self._params[k].copy() for k in PARAM_NAMES}

    def set_params(self, **values: Any) -> None:
        """Set any of w, w_x, w_h, b1, b2 (shape-checked); any other name is refused."""
        unknown = sorted(set(values) - set(PARAM_NAMES))
        if unknown:
            raise BPTTError(f"set_params got unknown parameter(s) {', '.join(unknown)}; the parameters are "
                            f"{', '.join(PARAM_NAMES)}")
        for k, v in values.items():
            setattr(self, k, v)

    def engine_params(self) -> engine.Params:
        """The five parameters as the engine takes them (the arrays themselves, not copies)."""
        return self._p

    def __copy__(self) -> "RNN":
        # a copy owns its parameters: setting or updating them in place leaves the original as it was
        new = object.__new__(type(self))
        new.__setstate__({**self.__getstate__(), "_theta": self._theta.copy()})
        return new

    def __getstate__(self) -> dict:
        # the parameters' views are made again from _theta (pickled or deep-copied, views would become copies)
        return {k: v for k, v in self.__dict__.items() if k not in ("_params", "_p", "_net")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._own(state["_theta"])

    def _check_param(self, name: str, value: Any) -> np.ndarray:
        shape = self.param_shapes()[name]
        a = check_float_array(value, name, self.dtype)
        if a.shape != shape:
            if a.size == 1 and int(np.prod(shape)) == 1:
                a = a.reshape(shape)  # a plain number for a 1x1 parameter
            else:
                raise BPTTError(f"{name} must have shape {shape}, got {a.shape}; reshape it or build the RNN with matching sizes")
        return a

    def __repr__(self) -> str:
        return (
            f"RNN(input_size={self.input_size}, hidden_size={self.hidden_size}, output_size={self.output_size}, "
            f"hidden_activation={self.hidden_activation!r}, output_activation={self.output_activation!r}, "
            f"dtype={self.dtype.name}, loss={self.loss_name!r})"
        )

    # ---------------------------------------------------------------- compute
    def forward(self, x: Any, h0: Any = None) -> ForwardResult:
        """All intermediates: z, h (h_0..h_T), u and y_pred.  See ``ForwardResult``."""
        self._check_finite_data(x, None, h0)  # an inf can give finite outputs: look before computing
        xb, _, h0b, batched = self._data(x, None, h0)
        with _quiet_overflow():
            fwd = dispatch.forward(self.engine_params(), xb, h0b, self._f, self._g)
        _check_finite_result(fwd.y_pred, "the forward pass")
        return _unbatch(fwd, batched)

    def predict(self, x: Any, h0: Any = None) -> np.ndarray:
        """y'_1..y'_T, shaped (T, O) or (T, B, O)."""
        return self.forward(x, h0).y_pred

    def loss(self, x: Any, y: Any, h0: Any = None, reduction: str = "mean") -> float:
        self._check_finite_data(x, y, h0)
        xb, yb, h0b, batched = self._data(x, y, h0)
        check_reduction(reduction)
        with _quiet_overflow():
            fwd = dispatch.forward(self.engine_params(), xb, h0b, self._f, self._g)
            value = engine.loss(fwd, yb, self._criterion, reduction)
        _check_finite_result(np.asarray(value), "the loss")
        return value

    def loss_and_grad(
        self,
        x: Any,
        y: Any,
        h0: Any = None,
        reduction: str = "mean",
        truncate: int | None = None,
        *,
        backend: str = "auto",
        checkpoint: int | str | None = None,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """(Loss, {w, w_x, w_h, b1, b2: dLoss/dθ}), each gradient the shape of its parameter.

        reduction: "mean" (Loss = 1/T sum_t E_t, and the mean over the batch) or "sum".
        truncate: backpropagate each error term at most this many steps (None: full BPTT).
        backend: "numpy" (engine.py, the readable reference), "numba" (the compiled
            kernels of kernels.py) or "auto" (the compiled kernel that suits the sizes).
            An activation whose table record has no compiled version runs on numpy under
            "auto" (same result) and is refused by "numba" (BPTTError naming its backends).
        checkpoint: None (store every h_t), "sqrt" (store every ceil(sqrt(T))-th) or k
            (every k-th): the same gradient, memory ~ (T/k + k) B H; see dispatch.py.
        """
        xb, yb, h0b, batched = self._data(x, y, h0, False)
        if reduction != "mean":
            check_reduction(reduction)
        if truncate is not None:
            check_truncate(truncate)
        if backend != "auto" or checkpoint is not None:
            checkpoint = dispatch.check_options(backend, checkpoint, truncate)
        try:
            loss, grads, _ = dispatch.loss_and_grad(self._net, xb, yb, h0b, reduction, truncate, checkpoint, backend,
                                                    False)
        except dispatch.NonFinite:
            self._check_finite_data(x, y, h0)  # a NaN or inf given: say which, not "overflowed"
            raise
        return loss, grads

    def _gradient(self, x, y, h0, reduction, truncate, backend="auto", checkpoint=None, need_dh0=True):
        """(loss, grads, dLoss/dh_0 shaped like the batch's h0, or None when need_dh0 is False)."""
        xb, yb, h0b, batched = self._data(x, y, h0, False)
        if reduction != "mean":
            check_reduction(reduction)
        if truncate is not None:
            check_truncate(truncate)
        if backend != "auto" or checkpoint is not None:
            checkpoint = dispatch.check_options(backend, checkpoint, truncate)
        try:
            loss, grads, dh0 = dispatch.loss_and_grad(self._net, xb, yb, h0b, reduction, truncate, checkpoint,
                                                      backend, need_dh0)
        except dispatch.NonFinite:
            self._check_finite_data(x, y, h0)  # a NaN or inf given: say which, not "overflowed"
            raise
        return loss, grads, (dh0 if batched or dh0 is None else dh0[0])

    def decompose(self, x: Any, y: Any, h0: Any = None, reduction: str = "mean") -> engine.Decomposition:
        """The seed's decomposition: dE_i/dθ per error term and per path k.  See ``engine.Decomposition``."""
        self._check_finite_data(x, y, h0)
        xb, yb, h0b, batched = self._data(x, y, h0)
        check_reduction(reduction)
        p = self.engine_params()
        check_decomposition_size(xb.shape[0], sum(a.size for a in p), self.dtype.itemsize)  # O(T^2) memory
        with _quiet_overflow():
            fwd = engine.forward(p, xb, h0b, self._f, self._g)
            return engine.decompose(p, xb, fwd, yb, self._f, self._g, self._criterion, reduction)

    # ---------------------------------------------------------------- validation
    # The one set of rules for the input forms, used by every method.  Values are converted by
    # _as_array, which does not scan for NaN or inf: loss_and_grad lets the result tell (every
    # implementation reports a non-finite result), the other methods call _check_finite_data first.
    def _data(self, x: Any, y: Any, h0: Any, zero_state: bool = True
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
        """(x (T, B, D), y (T, B, O) or None if not given, h0 (B, H), batched), C-contiguous in the model's
        dtype; batched: whether x came as (T, B, D).  h0 not given is zeros, or None if not zero_state
        (dispatch reads None as zeros, and the seed's call then allocates no state).  y is checked
        against the loss (class labels become one-hot rows).  Each step takes the common case first
        (an array already in the model's dtype and C order; y shaped like x when O = D): one rule for
        every form, cheap for the forms the seed's call uses."""
        dtype = self.dtype
        a = x if type(x) is np.ndarray and x.dtype is dtype and x.flags.carray else _as_array(x, "x", dtype)
        shape = a.shape
        nd = len(shape)
        if nd == 1 and self.input_size == 1:
            T = shape[0]
            if not T:
                self._refuse_shape(T, 1, 1)
            B = 1
            a = a.reshape(T, 1, 1)  # (T, 1, 1)
            batched = False
        elif nd == 3:
            T, B, Dx = shape
            if not T or not B or Dx != self.input_size:
                self._refuse_shape(T, B, Dx)
            batched = True
        elif nd == 2:
            T, Dx = shape
            if not T or Dx != self.input_size:
                self._refuse_shape(T, 1, Dx)
            B = 1
            a = a.reshape(T, 1, Dx)  # (T, 1, D)
            batched = False
        else:
            raise BPTTError(f"x must be (T, D) or (T, B, D), got shape {shape}")
        if y is None:
            t = None
        else:
            criterion = self._criterion
            if criterion.class_labels:
                y = self._labels(y, T, B, batched)
            t = y if type(y) is np.ndarray and y.dtype is dtype and y.flags.carray else _as_array(y, "y", dtype)
            if t.shape == shape and self.output_size == self.input_size:
                if not batched:
                    t = t.reshape(a.shape)  # shaped like x: (T, B, O) as x is (T, B, D)
            else:
                t = self._target_shape(t, y, T, B)
            try:
                criterion.check_targets(t)
            except BPTTError:
                check_float_array(y, "y", dtype)  # a NaN target: say so first
                raise
        if h0 is None:
            return a, t, np.zeros((B, self.hidden_size), dtype) if zero_state else None, batched  # h0 (B, H)
        H = self.hidden_size
        hb = _as_array(h0, "h0", dtype)
        if hb.ndim == 0 or hb.shape == (H,):
            hb = np.broadcast_to(hb, (B, H)).copy()  # (B, H): one initial state for every sequence
        elif hb.shape != (B, H):
            raise BPTTError(f"h0 must be a number, shape ({H},) or ({B}, {H}), got shape {hb.shape}")
        return a, t, hb, batched

    def _refuse_shape(self, T: int, B: int, Dx: int) -> None:
        if T == 0:
            raise BPTTError("x is an empty sequence (T = 0); give at least one time step")
        if B == 0:
            raise BPTTError("x has an empty batch (B = 0); give at least one sequence")
        D = self.input_size
        raise BPTTError(f"x has {Dx} features per step but the model's input_size is {D}; x must be (T, {D}) or (T, B, {D})")

    def _labels(self, y: Any, T: int, B: int, batched: bool) -> Any:
        """Integer class labels, (T,) or (T, B), as one-hot rows (T, B, O); any other y as it came."""
        labels = np.asarray(y) if isinstance(y, (list, tuple)) else y
        if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and labels.shape == ((T, B) if batched else (T,)):
            return losses.one_hot(labels if batched else labels[:, None], self.output_size, self.dtype)  # (T, B, O)
        return y

    def _target_shape(self, t: np.ndarray, y: Any, T: int, B: int) -> np.ndarray:
        """t (y as an array) as (T, B, O): (T,) for one output, (T, O) for one sequence; else one line."""
        O = self.output_size
        nd = t.ndim
        if nd == 1 and O == 1 and B == 1:
            t = t.reshape(t.shape[0], 1, 1)  # (T, 1, 1)
        elif nd == 2 and B == 1:
            t = t.reshape(t.shape[0], 1, t.shape[1])  # (T, 1, O)
        if t.shape != (T, B, O):
            want = f"({T}, {O})" if B == 1 else f"({T}, {B}, {O})"
            raise BPTTError(f"y must have shape {want} to match x, got {np.shape(y)}; give one target per time step "
                            "and output")
        return t

    def _check_finite_data(self, x: Any, y: Any, h0: Any) -> None:
        """The one-line BPTTError for a NaN or inf in x, y or h0 (None: not given); nothing if all are finite."""
        check_float_array(x, "x", self.dtype)
        if y is not None:
            check_float_array(y, "y", self.dtype)
        if h0 is not None:
            check_float_array(h0, "h0", self.dtype)


_FLOAT64 = np.dtype(np.float64)


def _as_array(v: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """v as a C-contiguous array of ``dtype``, not scanned for NaN or inf (see the module's doc).

    Arrays and lists of real numbers are converted here; anything else (bools, complex numbers,
    ragged lists, objects, other array types) goes through check_float_array, which reads it or
    refuses it in one line."""
    if type(v) is np.ndarray:
        if v.dtype is dtype:
            return v if v.flags.carray else np.array(v, dtype, order="C")
        if v.dtype.kind in "fiu":
            return v.astype(dtype, order="C")
    elif type(v) is list or type(v) is tuple:
        if dtype is not _FLOAT64:
            # A cast follows np.array(v) below; a sum that is a Python float proves v a flat sequence of
            # Python floats and ints (a complex, a numpy scalar, a string or a nested list makes the sum
            # something else or raises), which np.array converts straight to dtype with the same numbers
            # and no float64 copy (float32 lists: a third of the conversion's time at any length); np.fromiter
            # rounds each number as np.array does, 17 % sooner at T = 1000.
            try:
                flat = type(sum(v)) is float
            except Exception:  # noqa: BLE001 - any failure: the general rule below decides
                flat = False
            if flat:
                return np.fromiter(v, dtype, len(v))
        try:
            a = np.array(v)  # its own dtype first: a cast to float would drop an imaginary part silently
        except (TypeError, ValueError, OverflowError):
            a = None
        if a is not None and a.dtype.kind in "fiu":
            return a if a.dtype is dtype else a.astype(dtype)
    return np.require(check_float_array(v, name, dtype), dtype, ["C"])


def _scalar(name: str, v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise BPTTError(f"{name} must be a number, got {v!r}") from None
    if not np.isfinite(f):
        raise BPTTError(f"{name} must be finite, got {v!r}")
    return f



def _quiet_overflow():
    # overflow becomes one BPTTError from _check_finite_result, not a numpy warning
    return np.errstate(over="ignore", invalid="ignore")


def _check_finite_result(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise BPTTError(
            f"{what} overflowed to a non-finite value; scale the inputs or weights down (relu hidden units can grow without bound)"
        )


def _unbatch(fwd: engine.Forward, batched: bool) -> ForwardResult:
    if batched:
        return ForwardResult(fwd.z, fwd.h, fwd.u, fwd.y_pred)
    return ForwardResult(fwd.z[:, 0], fwd.h[:, 0], fwd.u[:, 0], fwd.y_pred[:, 0])


class Ensemble:
    """K networks of one architecture whose predictions are averaged: ``predict`` is their mean.

    ``bptt train --ensemble K`` trains one (``bptt.train.train_ensemble``) and ``bptt.io`` saves and
    loads it as one model.npz.  It has the sizes, activations and dtype of its members, so code that
    only predicts (task metrics, plots, ``bptt predict``) takes it where it takes an ``RNN``.
    """

    def __init__(self, members: list[RNN]):
        members = list(members)
        if not members or not all(isinstance(m, RNN) for m in members):
            raise BPTTError("an ensemble needs a non-empty list of bptt.RNN members")
        first = members[0]
        arch = (first.input_size, first.hidden_size, first.output_size, first.hidden_activation,
                first.output_activation, first.dtype, first.loss_name)
        for i, m in enumerate(members[1:], 1):
            if (m.input_size, m.hidden_size, m.output_size, m.hidden_activation, m.output_activation, m.dtype,
                    m.loss_name) != arch:
                raise BPTTError(f"ensemble member {i} has another architecture than member 0; members differ only in "
                                "their parameters")
        self.members = members
        self.criterion = first.criterion
        (self.input_size, self.hidden_size, self.output_size, self.hidden_activation, self.output_activation,
         self.dtype, self.loss_name) = arch

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"Ensemble({len(self.members)} × {self.members[0]!r})"

    def predict(self, x: Any, h0: Any = None) -> np.ndarray:
        """The mean over the members of y'_1..y'_T, shaped (T, O) or (T, B, O)."""
        return np.mean(np.stack([m.predict(x, h0) for m in self.members]), axis=0)  # (K, T, [B,] O) -> mean over K
