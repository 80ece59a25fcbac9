"""Gradient backends of the training loop: where a chunk's loss and gradient come from.

A backend is built from a ``train.TrainConfig`` (``cfg``; typed Any here: this module sits below train.py).

``train.train`` is the one loop; a backend only computes a mini-batch chunk's loss and gradients
(and, for ``CompiledBackend``, may do the whole update in one compiled call):

    numpy   ``CompiledBackend``: bptt's engine (``RNN.loss_and_grad``), with the fused compiled step
            (gradient, clipping and the optimizer's update in one call) where it covers the run
    torch   ``TorchBackend``: ``bptt.torch.sigmoid_rnn`` (the torch layer with its own backward); inside
            an initialised ``torch.distributed`` process group, data-parallel: each rank takes its
            contiguous share of every global mini-batch and the ranks all-reduce gradient and loss sum

Loss: the model's (``losses.py``), the mean over scored steps (and sequences) of E(y'_t, y_t).  A
task that scores only some steps (the adding problem, val/test windows of a series) gives a mask;
an unscored step's target is set to the network's own output, so its gradient is exactly zero
(dE/du = 0 at y = y' for every loss of the table), its loss is left out of the sum, and the
gradient is rescaled from 1/(T B) to 1/(number of scored steps).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import numpy as np

from . import activations, dispatch, losses
from .engine import PARAM_NAMES
from .model import RNN
from .validation import BPTTError, check_choice


def masked_loss_and_grad(model: RNN, x, y, mask, h0, truncate, need_state: bool = True, checkpoint: Any = None):
    """The model's loss over scored steps only, its gradients, and the final hidden state.

    x (T, B, D), y (T, B, O), mask (T, B) or None, h0 (B, H).
    Returns (loss, grads, h_T (B, H), number of scored (t, b) pairs).  need_state=False
    (no later chunk to carry h_T into) skips the extra forward pass when there is no
    mask, and returns h_T = None.  checkpoint: RNN.loss_and_grad's (memory of the backward pass).
    """
    Tn, B = x.shape[0], x.shape[1]
    kw = {"reduction": "mean", "truncate": truncate, "checkpoint": checkpoint}
    if mask is None and not need_state:
        loss, grads = model.loss_and_grad(x, y, h0=h0, **kw)
        return loss, grads, None, Tn * B
    fwd = model.forward(x, h0=h0)
    h_last = fwd.h[-1]  # (B, H)
    if mask is None:
        loss, grads = model.loss_and_grad(x, y, h0=h0, **kw)
        return loss, grads, h_last, Tn * B
    n = int(mask.sum())
    if n == 0:
        return 0.0, None, h_last, 0
    # an unscored step's target is the output itself: dE/du = 0 there for every loss of the table
    # (tests/test_losses.py), so zero gradient; its E(y', y') need not be 0 (cross-entropy), so the
    # loss is summed over the scored steps alone
    y_eff = np.where(mask[..., None], y, fwd.y_pred)  # (T, B, O)
    _, grads = model.loss_and_grad(x, y_eff, h0=h0, **kw)
    scale = Tn * B / n  # from 1/(T B) to 1/n
    e = model.criterion.value(fwd.u, fwd.y_pred, y)  # (T, B)
    return float(np.sum(e[mask])) / n, {k: g * scale for k, g in grads.items()}, h_last, n


class Backend(Protocol):
    """Where a chunk's loss and gradient come from.  rank/world: this process's place in a data-parallel group."""

    rank: int
    world: int

    def loss_and_grad(self, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, mask: np.ndarray | None,
                      h0: Any, need_state: bool) -> tuple[float, dict[str, np.ndarray] | None, Any, int]:
        """x (T, B, D), y (T, B, O), mask (T, B) or None: the GLOBAL chunk; h0: what the previous chunk returned, or None (zeros).

        Returns (mean loss over the chunk's n scored steps, its gradients as numpy arrays (None when
        n = 0), the state to carry into the next chunk (None unless need_state), n).
        """
        ...

    def agree(self, value: float) -> float:
        """Rank 0's ``value``, on every rank (and a barrier); the value itself in one process."""
        ...

    def max_rank_diff(self, arrays: dict[str, np.ndarray]) -> float:
        """The largest difference between this rank's ``arrays`` and rank 0's, over all ranks (0 in one process)."""
        ...


class EngineBackend:
    """Gradients from bptt's numpy engine (``RNN.loss_and_grad``), in this process."""

    rank, world = 0, 1

    def __init__(self, cfg: Any, input_size: int, output_size: int):
        self.model = RNN(input_size, cfg.hidden_size, output_size, cfg.hidden_activation, cfg.output_activation,
                         np.dtype(cfg.dtype), loss=cfg.loss)
        self.truncate, self.checkpoint = cfg.truncate, cfg.grad_checkpoint

    def loss_and_grad(self, params, x, y, mask, h0, need_state):
        self.model.set_params(**params)
        if h0 is None:
            h0 = np.zeros((x.shape[1], self.model.hidden_size), dtype=self.model.dtype)  # (B, H)
        return masked_loss_and_grad(self.model, x, y, mask, h0, self.truncate, need_state, self.checkpoint)

    def agree(self, value: float) -> float:
        return value

    def max_rank_diff(self, arrays: dict[str, np.ndarray]) -> float:
        return 0.0


class CompiledBackend(EngineBackend):
    """The numpy backend's gradients, plus ``fused_step``: the whole update of a mini-batch (gradient,
    global-norm clipping, the optimizer's update) in one compiled call (``kernels.train_step``), equal in
    float64 to the loop's own clip_global_norm and optimizer step (tests/test_compiled_train.py); and
    ``fused_steps``: many mini-batches of an epoch, gathered and updated in one compiled call.  It
    covers whole sequences without a mask, with an optimizer that declares a compiled update
    (``fused_update``, optim.py: Adam, SGD), where ``dispatch.step_kernel`` names a kernel (compiled
    activations and loss, no gradient checkpointing, its sizes); anything else returns None from
    ``fused_step`` and the loop takes the usual path (the optimizer's ``step``)."""

    def __init__(self, cfg: Any, input_size: int, output_size: int):
        super().__init__(cfg, input_size, output_size)
        self.cfg = cfg
        self.kernels = None  # bptt.kernels, imported at the first step (it imports numba)
        m = self.model
        self.net = dispatch.network(m.engine_params(), m.hidden_act, m.output_act, m.criterion)
        self.grads: tuple | None = None

    def fused_step(self, params, opt, x, y, mask, h0, need_state, lr):
        """One compiled update of ``params`` and ``opt`` (in place); (loss, None, n) or None (not covered)."""
        fused_update = getattr(opt, "fused_update", None)  # None: the optimizer has no compiled update
        if fused_update is None or mask is not None or h0 is not None or need_state:
            return None
        T, B = x.shape[0], x.shape[1]
        kind = dispatch.step_kernel(self.net, T, B, self.checkpoint)
        if kind is None:
            return None
        k = self.kernels
        if k is None:
            from . import kernels as k

            self.kernels = k
        cfg, m = self.cfg, self.model
        dt = m.dtype
        x = np.require(x, dt, ["C", "W"])  # (T, B, D)
        y = np.require(y, dt, ["C", "W"])  # (T, B, O)
        ps = tuple(params[n] for n in PARAM_NAMES)
        if self.grads is None:
            self.grads = tuple(np.empty_like(a) for a in ps)
        fu = fused_update(lr, opt.t + 1)
        if fu is None:
            return None
        s1, s2 = tuple(fu.s1[n] for n in PARAM_NAMES), tuple(fu.s2[n] for n in PARAM_NAMES)
        hyper = np.array([k.STEP_KERNELS[kind], fu.code, *fu.numbers, -1.0 if cfg.clip is None else cfg.clip,
                          1.0 / (T * B), T if cfg.truncate is None else min(cfg.truncate, T)])  # kernels.STEP_FIELDS
        opt.t += 1
        h = np.zeros((B, m.hidden_size), dt)  # (B, H)
        f, g = m.hidden_act.code, m.output_act.code
        loss = k.train_step(x, y, h, ps, self.grads, s1, s2, hyper, f, g, k.loss_code(m.criterion))
        if loss != loss:
            opt.t -= 1  # nothing was updated
            raise BPTTError("the loss or its gradients overflowed to a non-finite value")
        if loss == math.inf:
            raise BPTTError("a parameter became non-finite")
        return loss, None, T * B

    def fused_steps(self, params, opt, xs, ys, order, first: int, lrs: list[float]):
        """Mini-batches first, first + 1, ... of an epoch (len(lrs) of them, order: the epoch's permutation
        of the N sequences of xs (T, N, D), ys (T, N, O)) in ONE compiled call (``kernels.train_steps``),
        each the update ``fused_step`` makes, so the same bits.  Returns (losses, ns, error): the losses
        and scored steps of the batches that ran and None, or the one line that stopped the run at the
        batch after them; None if not covered (the loop then takes the batches one by one)."""
        fused_update = getattr(opt, "fused_update", None)
        T, N = xs.shape[0], xs.shape[1]
        if fused_update is None or T == 0:
            return None
        B = self.cfg.batch_size
        sizes = [min(B, N - (first + j) * B) for j in range(len(lrs))]
        kinds = [dispatch.step_kernel(self.net, T, b, self.checkpoint) for b in sizes]
        if any(kind is None for kind in kinds):
            return None
        k = self.kernels
        if k is None:
            from . import kernels as k

            self.kernels = k
        cfg, m = self.cfg, self.model
        dt = m.dtype
        rows, fu = [], None
        for j, lr in enumerate(lrs):
            fu = fused_update(lr, opt.t + 1 + j)
            if fu is None:
                return None
            rows.append([k.STEP_KERNELS[kinds[j]], fu.code, *fu.numbers, -1.0 if cfg.clip is None else cfg.clip,
                         1.0 / (T * sizes[j]), T if cfg.truncate is None else min(cfg.truncate, T)])  # STEP_FIELDS
        hypers = np.array(rows)  # (n, len(STEP_FIELDS))
        ps = tuple(params[n] for n in PARAM_NAMES)
        if self.grads is None:
            self.grads = tuple(np.empty_like(a) for a in ps)
        s1, s2 = tuple(fu.s1[n] for n in PARAM_NAMES), tuple(fu.s2[n] for n in PARAM_NAMES)
        losses = np.empty(len(lrs))  # (n,)
        done = k.train_steps(np.require(xs, dt, ["C", "W"]), np.require(ys, dt, ["C", "W"]),
                             np.require(order, np.int64, ["C"]), B, first, ps, self.grads, s1, s2, hypers,
                             m.hidden_act.code, m.output_act.code, k.loss_code(m.criterion), losses)
        opt.t += done
        error = None
        if done < len(lrs):
            if losses[done] != losses[done]:
                error = "the loss or its gradients overflowed to a non-finite value"  # nothing was updated
            else:
                opt.t += 1  # the batch updated the parameters, one of them to inf or NaN
                error = "a parameter became non-finite"
        return losses[:done].tolist(), [T * b for b in sizes[:done]], error


class TorchBackend:
    """Gradients from ``bptt.torch.sigmoid_rnn`` (the torch layer's own backward), the loss summed by torch.

    Inside an initialised ``torch.distributed`` process group: data-parallel.  This rank takes its
    contiguous share of the global chunk (``np.array_split``; an empty share gives a zero
    gradient), computes the share's summed loss and its gradient scaled by 1/n (n: scored steps of
    the GLOBAL chunk, which every rank counts from the data it holds), and all-reduces (sums)
    the flat gradient and the loss sum.  The carried hidden state is the share's.
    """

    def __init__(self, cfg: Any, input_size: int, output_size: int):
        import torch
        import torch.distributed as dist

        from .torch import sigmoid_rnn

        self.torch, self.dist, self.sigmoid_rnn = torch, dist, sigmoid_rnn
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if self.distributed else (0, 1)
        if self.world != cfg.nproc:
            raise BPTTError(f"nproc is {cfg.nproc} but this process runs in a group of {self.world}; "
                            "start data-parallel runs with bptt.ddp (bptt train --backend torch --nproc N, or torchrun)")
        self.hidden_size, self.dtype = cfg.hidden_size, np.dtype(cfg.dtype)
        self.acts = (cfg.hidden_activation, cfg.output_activation)
        self.criterion = losses.require(losses.pair(losses.get(cfg.loss), activations.get(cfg.output_activation)),
                                        "torch")
        self.truncate, self.checkpoint = cfg.truncate, cfg.grad_checkpoint

    def share(self, B: int) -> np.ndarray:
        """This rank's contiguous part of a global batch of B sequences (may be empty)."""
        return np.array_split(np.arange(B), self.world)[self.rank]  # (b,)

    def _share_sum(self, params, x, y, mask, h0, n: int):
        """(loss sum over the share, gradient of loss sum / n, h_T (b, H)) for the share's x (T, b, D)."""
        torch = self.torch
        if x.shape[1] == 0:  # nothing here: a zero gradient, still summed with the other ranks'
            zeros = {k: np.zeros_like(params[k]) for k in PARAM_NAMES}
            return 0.0, zeros, np.zeros((0, self.hidden_size), dtype=self.dtype)
        p = {k: torch.tensor(params[k], requires_grad=True) for k in PARAM_NAMES}  # copies of the numpy parameters
        xt = torch.from_numpy(np.ascontiguousarray(x))  # (T, b, D)
        h0t = None if h0 is None else torch.from_numpy(np.ascontiguousarray(h0))  # (b, H)
        y_pred, h_T = self.sigmoid_rnn(xt, h0t, p["w_x"], p["w_h"], p["b1"], p["w"], p["b2"], *self.acts,
                                       checkpoint=self.checkpoint, truncate=self.truncate)  # (T, b, O), (b, H)
        r2 = self.criterion.torch_value(None, y_pred, torch.from_numpy(np.ascontiguousarray(y)))  # (T, b)
        if mask is not None:
            r2 = r2 * torch.from_numpy(np.ascontiguousarray(mask)).to(r2.dtype)  # unscored steps: zero error
        total = r2.sum()
        (total / n).backward()
        grads = {k: t.grad.numpy() for k, t in p.items()}
        return float(total.detach()), grads, h_T.detach().numpy()

    def loss_and_grad(self, params, x, y, mask, h0, need_state):
        Tn, B = x.shape[0], x.shape[1]
        n = Tn * B if mask is None else int(mask.sum())  # the global chunk's scored steps, on every rank
        mine = self.share(B)  # (b,)
        if n == 0:
            h = None
            if need_state:  # the state still moves on through the unscored steps
                h = self._forward_state(params, x[:, mine], h0)
            return 0.0, None, h, 0
        total, grads, h_T = self._share_sum(params, x[:, mine], y[:, mine], None if mask is None else mask[:, mine], h0, n)
        if self.distributed:
            total, grads = self._all_reduce(total, grads)
        return total / n, grads, (h_T if need_state else None), n

    def _forward_state(self, params, x, h0):
        """h_T (b, H) of the share, no gradient."""
        if x.shape[1] == 0:
            return np.zeros((0, self.hidden_size), dtype=self.dtype)
        m = RNN(x.shape[2], self.hidden_size, params["w"].shape[0], *self.acts, self.dtype, loss=self.criterion.name)
        m.set_params(**params)
        return m.forward(x, h0=h0).h[-1]  # (b, H)

    def _all_reduce(self, total: float, grads: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        """Sum the loss and the flat gradient over the ranks (one all-reduce)."""
        flat = np.concatenate([grads[k].ravel() for k in PARAM_NAMES] + [np.array([total], dtype=self.dtype)])  # (P + 1,)
        t = self.torch.from_numpy(flat)
        self.dist.all_reduce(t)
        out, o = {}, 0
        for k in PARAM_NAMES:
            size = grads[k].size
            out[k] = flat[o : o + size].reshape(grads[k].shape).copy()
            o += size
        return float(flat[-1]), out

    def agree(self, value: float) -> float:
        if not self.distributed:
            return value
        t = self.torch.tensor([value if self.rank == 0 else 0.0], dtype=self.torch.float64)
        self.dist.all_reduce(t)  # rank 0's value + zeros: exactly rank 0's value; every rank waits for all
        return float(t[0])

    def max_rank_diff(self, arrays: dict[str, np.ndarray]) -> float:
        if not self.distributed:
            return 0.0
        flat = self.torch.from_numpy(np.concatenate([arrays[k].ravel() for k in sorted(arrays)]).astype(np.float64))
        ref = flat.clone()
        self.dist.broadcast(ref, 0)
        d = (flat - ref).abs().max().reshape(1)
        self.dist.all_reduce(d, op=self.dist.ReduceOp.MAX)
        return float(d[0])


# "numpy" trains with CompiledBackend: its fused step where it covers the run, the engine otherwise
BACKENDS: dict[str, Callable[[Any, int, int], Backend]] = {"numpy": CompiledBackend, "torch": TorchBackend}


def make_backend(cfg, input_size: int, output_size: int) -> Backend:
    """The backend ``cfg.backend`` names, for a network with these input and output sizes."""
    return BACKENDS[check_choice("backend", cfg.backend, BACKENDS)](cfg, input_size, output_size)
