"""Training the seed's network: optimizers, schedule, clipping, truncated BPTT, checkpoints.

One flat loop (``train``), in the spirit of nanoGPT's train.py: read it top to
bottom to know everything a run does.

    for epoch:
        shuffle the training sequences with rng([seed, epoch])
        for each mini-batch (T, B, D):
            h = 0
            for each chunk of `chunk` steps (the whole sequence when chunk is None):
                forward from h (with this step's parameters)
                loss, grads = RNN.loss_and_grad(chunk, h0=h, truncate=truncate)
                clip grads to global norm `clip`; lr from the schedule; optimizer step
                h = the chunk's last hidden state      (truncated BPTT over long streams)
        validation loss; early stopping on it; checkpoint every `checkpoint_every` epochs

Loss: the seed's, Loss = mean over scored steps (and sequences) of E_t = 1/2 ||y_t - y'_t||^2.
A task that scores only some steps (the adding problem, val/test windows of a series)
gives a mask; an unscored step's target is set to the network's own output, so
its error and its gradient are exactly zero, and the result is rescaled from
1/(T B) to 1/(number of scored steps).

Reproducibility: the model is initialised from ``seed``, the shuffle of epoch e is
drawn from ``np.random.default_rng([seed, e])``, and the checkpoint holds the
parameters, the optimizer state, the history and the early-stopping state.  So a
run resumed from a checkpoint ends with exactly (bit for bit) the parameters of
an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import io as bio
from . import tasks as T
from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .validation import (BPTTError, check_choice, check_dtype, check_int, check_number, check_seed, check_sizes)
from .engine import PARAM_NAMES
from .model import RNN

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
# Testing hook: after this epoch has finished (and any checkpoint written), the
# process sends itself SIGKILL, as a crash or `kill -9` would.
KILL_ENV = "BPTT_KILL_AFTER_EPOCH"


@dataclass
class TrainConfig:
    """Every hyperparameter of a run.  ``task_options`` go to ``tasks.load`` (e.g. bits, length, window)."""

    task: str = "binary-addition"
    task_options: dict[str, Any] = field(default_factory=dict)
    hidden_size: int = 16
    hidden_activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    dtype: str = "float64"
    optimizer: str = "adam"  # sgd | adam
    lr: float = 0.01
    momentum: float = 0.0  # sgd
    nesterov: bool = False  # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adam
    eps: float = 1e-8  # adam
    clip: float | None = 1.0  # global gradient norm; None: no clipping
    schedule: str = "constant"  # constant | cosine (to min_lr over all steps)
    min_lr: float = 0.0
    epochs: int = 100
    batch_size: int = 32
    chunk: int | None = None  # truncated BPTT: update every `chunk` steps, hidden state carried
    truncate: int | None = None  # RNN.loss_and_grad(truncate=): each error backpropagates <= k steps
    patience: int | None = None  # early stopping: epochs without a better val loss
    seed: int = 0
    checkpoint_every: int = 10  # epochs; 0: only at the end

    def validate(self) -> None:
        check_choice("task", self.task, T.TASKS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_dtype(self.dtype)
        check_choice("hidden_activation", self.hidden_activation, HIDDEN_ACTIVATIONS)
        check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        check_sizes(1, self.hidden_size, 1)
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(self, name))
        check_seed(self.seed, none_ok=False)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        for name in ("chunk", "truncate", "patience"):
            check_int(name, getattr(self, name), none_ok=True)
        check_number("lr", self.lr, 0, low_open=True)
        check_number("min_lr", self.min_lr, 0)
        check_number("momentum", self.momentum, 0, 1, high_open=True)
        check_number("eps", self.eps, 0, low_open=True)
        check_number("clip", self.clip, 0, low_open=True, none_ok=True)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise BPTTError("nesterov needs --optimizer sgd and a momentum > 0")
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise BPTTError(f"adam betas must be two numbers in [0, 1), got {self.betas!r}")
        for b in self.betas:
            check_number("adam beta", b, 0, 1, high_open=True)
    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise BPTTError(f"unknown training settings {sorted(unknown)}; this config was written by another bptt version")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


# Per-task defaults: settings that make each task learn out of the box (README "## Training").
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "binary-addition": {"hidden_size": 8, "lr": 0.05, "epochs": 30, "batch_size": 32, "checkpoint_every": 5},
    "sine": {"hidden_size": 16, "lr": 0.01, "epochs": 30, "batch_size": 16, "chunk": 25, "checkpoint_every": 5},
    "adding": {"hidden_size": 16, "lr": 0.01, "epochs": 30, "batch_size": 32, "checkpoint_every": 5},
    "sunspots": {"hidden_size": 8, "lr": 0.01, "epochs": 200, "batch_size": 16, "checkpoint_every": 20},
    "csv": {"hidden_size": 8, "lr": 0.01, "epochs": 200, "batch_size": 16, "checkpoint_every": 20},
}
# The options each task function takes (``tasks.load(name, **options)``).
TASK_OPTIONS: dict[str, tuple[str, ...]] = {
    "binary-addition": ("bits", "n_train", "n_val", "n_test"),
    "sine": ("length", "n_train", "n_val", "n_test", "noise"),
    "adding": ("length", "n_train", "n_val", "n_test"),
    "sunspots": ("window", "n_val", "n_test"),
    "csv": ("path", "column", "window", "n_val", "n_test"),
}


def _option_flag(name: str) -> str:
    return "--csv" if name == "path" else "--" + name.replace("_", "-")


def config_for(task: str, task_options: dict[str, Any] | None = None, **settings: Any) -> TrainConfig:
    """TrainConfig for ``task``: TrainConfig's defaults, then TASK_DEFAULTS[task], then ``settings``."""
    if task not in T.TASKS:
        raise BPTTError(f"unknown task {task!r}; choose one of {', '.join(T.TASKS)}")
    task_options = dict(task_options or {})
    allowed = TASK_OPTIONS[task]
    for k in task_options:
        if k not in allowed:
            raise BPTTError(f"{_option_flag(k)} does not apply to task {task}; its options are "
                            f"{', '.join(_option_flag(a) for a in allowed)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for k in settings:
        if k not in fields:
            raise BPTTError(f"unknown training setting {k!r}; the settings are {', '.join(sorted(fields))}")
    cfg = TrainConfig(task=task, task_options=task_options, **{**TASK_DEFAULTS[task], **settings})
    cfg.validate()
    return cfg


def load_task(cfg: TrainConfig) -> T.TaskData:
    """The task's data for this config (seeded by cfg.seed)."""
    allowed = TASK_OPTIONS.get(cfg.task, ())
    for k in cfg.task_options:
        if k not in allowed:
            raise BPTTError(f"{_option_flag(k)} does not apply to task {cfg.task}; its options are "
                            f"{', '.join(_option_flag(a) for a in allowed)}")
    return T.load(cfg.task, seed=cfg.seed, **cfg.task_options)


# ---------------------------------------------------------------- optimizers
class SGD:
    """p <- p - lr * d, with v <- momentum v + g and d = v (or g + momentum v, Nesterov).

    The update rule of torch.optim.SGD (dampening 0, no weight decay).
    """

    def __init__(self, params: dict[str, np.ndarray], momentum: float = 0.0, nesterov: bool = False):
        self.momentum, self.nesterov = momentum, nesterov
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        """Updates ``params`` in place."""
        self.t += 1
        for k, g in grads.items():
            if self.momentum:
                v = self.v[k]
                v *= self.momentum  # v starts at 0, so the first step gives v = g, as torch does
                v += g
                d = g + self.momentum * v if self.nesterov else v
            else:
                d = g
            params[k] -= lr * d

    def state(self) -> dict[str, np.ndarray]:
        return {f"v.{k}": v for k, v in self.v.items()}

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None:
        self.v = {k: arrays[f"v.{k}"].copy() for k in self.v}
        self.t = t


class Adam:
    """Adam (Kingma & Ba 2015) as torch.optim.Adam computes it:

    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, params: dict[str, np.ndarray], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            params[k] -= (lr / c1) * m / (np.sqrt(v) / math.sqrt(c2) + self.eps)

    def state(self) -> dict[str, np.ndarray]:
        return {**{f"m.{k}": a for k, a in self.m.items()}, **{f"v.{k}": a for k, a in self.v.items()}}

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None:
        self.m = {k: arrays[f"m.{k}"].copy() for k in self.m}
        self.v = {k: arrays[f"v.{k}"].copy() for k in self.v}
        self.t = t


def make_optimizer(cfg: TrainConfig, params: dict[str, np.ndarray]):
    if cfg.optimizer == "sgd":
        return SGD(params, cfg.momentum, cfg.nesterov)
    return Adam(params, cfg.betas, cfg.eps)


def clip_global_norm(grads: dict[str, np.ndarray], max_norm: float | None) -> float:
    """Scale all gradients by min(1, max_norm / ||g||), ||g|| over every parameter together.  Returns ||g|| before."""
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    if max_norm is not None and norm > max_norm:
        s = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= s
    return norm


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for update number ``step`` (0-based) of ``total_steps``."""
    if cfg.schedule == "constant":
        return cfg.lr
    frac = min(step / max(total_steps, 1), 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * frac))


# ---------------------------------------------------------------- losses
def masked_loss_and_grad(model: RNN, x, y, mask, h0, truncate, need_state: bool = True):
    """The seed's loss over scored steps only, its gradients, and the final hidden state.

    x (T, B, D), y (T, B, O), mask (T, B) or None, h0 (B, H).
    Returns (loss, grads, h_T (B, H), number of scored (t, b) pairs).  need_state=False
    (no later chunk to carry h_T into) skips the extra forward pass when there is no
    mask, and returns h_T = None.
    """
    Tn, B = x.shape[0], x.shape[1]
    if mask is None and not need_state:
        loss, grads = model.loss_and_grad(x, y, h0=h0, reduction="mean", truncate=truncate)
        return loss, grads, None, Tn * B
    fwd = model.forward(x, h0=h0)
    h_last = fwd.h[-1]  # (B, H)
    if mask is None:
        loss, grads = model.loss_and_grad(x, y, h0=h0, reduction="mean", truncate=truncate)
        return loss, grads, h_last, Tn * B
    n = int(mask.sum())
    if n == 0:
        return 0.0, None, h_last, 0
    # an unscored step's target is the output itself: zero error, zero gradient
    y_eff = np.where(mask[..., None], y, fwd.y_pred)  # (T, B, O)
    loss, grads = model.loss_and_grad(x, y_eff, h0=h0, reduction="mean", truncate=truncate)
    scale = Tn * B / n  # from 1/(T B) to 1/n
    return loss * scale, {k: g * scale for k, g in grads.items()}, h_last, n


def evaluate(model: RNN, split: T.Split, batch: int = 4096) -> float:
    """The seed's loss (mean of 1/2 ||y - y'||^2 over scored steps) on a whole split, full sequences."""
    total, count = 0.0, 0
    for lo in range(0, split.n, batch):
        x = split.x[:, lo : lo + batch].astype(model.dtype)  # (T, b, D)
        y = split.y[:, lo : lo + batch]  # (T, b, O)
        r2 = 0.5 * np.sum((model.predict(x) - y) ** 2, axis=-1)  # (T, b)
        if split.mask is None:
            total += float(r2.sum())
            count += r2.size
        else:
            m = split.mask[:, lo : lo + batch]
            total += float(r2[m].sum())
            count += int(m.sum())
    return total / max(count, 1)


# ---------------------------------------------------------------- gradient flow
def gradient_flow(model: RNN, x: Any, y: Any, h0: Any = None) -> np.ndarray:
    """G[t, k] = ||∂E_t/∂h_k||, E_t = 1/2 ||y_t - y'_t||^2, for one sequence.  Returns (T, T), NaN for k > t.

    x (T, D), y (T, O).  Indices are 0-based: row t is E_{t+1}, column k is h_{k+1}.
    ∂E_t/∂h_t = (y'_t - y_t) g'(u_t) w, and ∂E_t/∂h_{k-1} = (∂E_t/∂h_k * f'(z_k)) w_h:
    the seed's dh_i/dh_k factor, one step at a time.
    """
    fwd = model.forward(x, h0=h0)  # unbatched: h (T+1, H), y_pred (T, O)
    yv = np.asarray(y, dtype=np.float64).reshape(fwd.y_pred.shape)
    f = model._f
    g = model._g
    Tn = fwd.y_pred.shape[0]
    du = (fwd.y_pred - yv) * g.deriv(fwd.y_pred)  # (T, O)
    fprime = f.deriv(fwd.h[1:])  # (T, H)
    G = np.full((Tn, Tn), np.nan)
    for t in range(Tn):
        delta = du[t] @ model.w  # (H,): ∂E_t/∂h_t
        G[t, t] = np.linalg.norm(delta)
        for k in range(t - 1, -1, -1):
            delta = (delta * fprime[k + 1]) @ model.w_h  # ∂E_t/∂h_k
            G[t, k] = np.linalg.norm(delta)
    return G


# ---------------------------------------------------------------- checkpoints
def _checkpoint_path(out: Path) -> Path:
    return out / "checkpoint.npz"


def save_checkpoint(out: Path, cfg: TrainConfig, model: RNN, opt, state: dict[str, Any], best: dict[str, np.ndarray]) -> None:
    arrays = {f"param.{k}": v for k, v in model.params().items()}
    arrays.update({f"opt.{k}": v for k, v in opt.state().items()})
    arrays.update({f"best.{k}": v for k, v in best.items()})
    meta = {"format": bio.CHECKPOINT_FORMAT, "version": bio.VERSION, "config": cfg.to_json(), "state": state, "opt_t": opt.t}
    bio.save_arrays(_checkpoint_path(out), arrays, meta)


def load_checkpoint(out: Path) -> tuple[TrainConfig, dict[str, np.ndarray], dict[str, np.ndarray], int, dict[str, Any], dict[str, np.ndarray]]:
    """Returns (config, params, optimizer arrays, optimizer step count, state, best params)."""
    p = _checkpoint_path(out)
    if not p.exists():
        raise BPTTError(f"{out}: no checkpoint.npz to resume from; run without --resume (and with --force to reuse the folder)")
    arrays, meta = bio.load_arrays(p, bio.CHECKPOINT_FORMAT)
    try:
        cfg = TrainConfig.from_json(meta["config"])
        params = {k: arrays[f"param.{k}"] for k in PARAM_NAMES}
        best = {k: arrays[f"best.{k}"] for k in PARAM_NAMES}
        opt_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
        return cfg, params, opt_arrays, int(meta["opt_t"]), meta["state"], best
    except (KeyError, TypeError) as e:
        raise BPTTError(f"{p}: checkpoint is incomplete (missing {e}); start the run again without --resume") from None


# ---------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    model: RNN
    data: T.TaskData
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    config: TrainConfig


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    data: T.TaskData | None = None,
) -> TrainResult:
    """Train per ``cfg``.  With ``out``, checkpoints go to out/checkpoint.npz; ``resume`` continues from it.

    progress(info) is called after every update ({"epoch", "batch", "batches", "loss"}) and after
    every epoch ({"epoch", "train_loss", "val_loss", "done": True}).  ``data``: the task's data when
    the caller has loaded it already (``load_task(cfg)``).
    Returns the model of the epoch with the lowest validation loss (model selection on the
    validation split, with or without early stopping), the history and the test metrics.
    """
    cfg.validate()
    out = Path(out) if out is not None else None
    data = data if data is not None else load_task(cfg)
    dtype = np.dtype(cfg.dtype)
    model = RNN(data.input_size, cfg.hidden_size, data.output_size, cfg.hidden_activation, cfg.output_activation, dtype, seed=cfg.seed)
    params = model.params()  # the optimizer updates these arrays in place; model reads them back each step
    opt = make_optimizer(cfg, params)
    Ttot, N = data.train.x.shape[0], data.train.n
    batches = math.ceil(N / cfg.batch_size)
    chunk = cfg.chunk or Ttot
    chunks = math.ceil(Ttot / chunk)
    total_steps = cfg.epochs * batches * chunks
    xs = data.train.x.astype(dtype)  # (T, N, D)
    ys = data.train.y.astype(dtype)  # (T, N, O)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "train_loss": [], "val_loss": [], "best_val": None,
                             "best_epoch": 0, "bad_epochs": 0, "stopped_early": False}
    best = model.params()

    if resume:
        if out is None:
            raise BPTTError("resume needs the run's output folder")
        saved_cfg, saved_params, opt_arrays, opt_t, state, best = load_checkpoint(out)
        if saved_cfg.to_json() != cfg.to_json():
            raise BPTTError(f"{out}: the checkpoint was written with other settings; resume with the run's own config")
        for k in PARAM_NAMES:
            params[k][...] = saved_params[k]
        opt.load_state(opt_arrays, opt_t)
    model.set_params(**params)

    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
    while state["epoch"] < cfg.epochs and not state["stopped_early"]:
        epoch = state["epoch"] + 1
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(N)  # (N,): this epoch's order
        loss_sum, loss_n = 0.0, 0
        for bi in range(batches):
            idx = perm[bi * cfg.batch_size : (bi + 1) * cfg.batch_size]
            xb, yb = xs[:, idx], ys[:, idx]  # (T, B, D), (T, B, O)
            mb = None if data.train.mask is None else data.train.mask[:, idx]  # (T, B)
            h = np.zeros((len(idx), cfg.hidden_size), dtype=dtype)  # (B, H)
            for c0 in range(0, Ttot, chunk):
                sl = slice(c0, c0 + chunk)
                loss, grads, h_next, n = masked_loss_and_grad(
                    model, xb[sl], yb[sl], None if mb is None else mb[sl], h, cfg.truncate,
                    need_state=c0 + chunk < Ttot,
                )
                if grads is not None:
                    clip_global_norm(grads, cfg.clip)
                    opt.step(params, grads, lr_at(cfg, state["step"], total_steps))
                    model.set_params(**params)
                    loss_sum += loss * n
                    loss_n += n
                state["step"] += 1
                h = h_next  # carried into the next chunk; no gradient flows back through it
            if progress:
                progress({"epoch": epoch, "batch": bi + 1, "batches": batches, "loss": loss_sum / max(loss_n, 1)})
        train_loss = loss_sum / max(loss_n, 1)
        val_loss = evaluate(model, data.val)
        state["train_loss"].append(train_loss)
        state["val_loss"].append(val_loss)
        state["epoch"] = epoch
        if state["best_val"] is None or val_loss < state["best_val"]:
            state.update(best_val=val_loss, best_epoch=epoch, bad_epochs=0)
            best = model.params()
        else:
            state["bad_epochs"] += 1
            if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
                state["stopped_early"] = True
        if progress:
            progress({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "done": True})
        if out is not None and cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0:
            save_checkpoint(out, cfg, model, opt, state, best)
        if kill_after and epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # testing hook: die like kill -9, no cleanup
    if out is not None:
        save_checkpoint(out, cfg, model, opt, state, best)

    final = RNN(data.input_size, cfg.hidden_size, data.output_size, cfg.hidden_activation, cfg.output_activation, dtype)
    final.set_params(**best)
    history = {"train_loss": list(state["train_loss"]), "val_loss": list(state["val_loss"])}
    m = T.metrics(data, final)
    m.update(best_epoch=state["best_epoch"], best_val_loss=state["best_val"], epochs_run=state["epoch"],
             stopped_early=state["stopped_early"], updates=state["step"])
    return TrainResult(final, data, history, m, cfg)


def model_info(result: TrainResult) -> dict[str, Any]:
    """What ``bptt predict`` needs beside the parameters: task, settings, scaling."""
    d = result.data
    return {
        "task": d.name,
        "task_info": d.info,
        "scaling": d.scaling.to_json() if d.scaling else None,
        "config": result.config.to_json(),
    }


def write_outputs(result: TrainResult, out: Path) -> dict[str, Path]:
    """model.npz, metrics.json and the plots (loss.png, predictions.png, gradflow.png) in ``out``."""
    from . import plots

    out = Path(out)
    paths = {"model": out / "model.npz", "metrics": out / "metrics.json"}
    bio.save_model(paths["model"], result.model, model_info(result))
    metrics = {"task": result.data.name, "task_info": result.data.info, "config": result.config.to_json(),
               "history": result.history, "test": result.metrics}
    bio.atomic_write_json(paths["metrics"], metrics)
    paths["loss_plot"] = plots.loss_curves(result.history, out / "loss.png", title=f"{result.data.name}: loss per epoch")
    paths["predictions_plot"] = plots.predictions(result.data, result.model, result.metrics, out / "predictions.png")
    x, y = gradflow_sequence(result.data)
    maps = gradflow_pair(result.model, x, y)
    paths["gradflow_plot"] = plots.gradient_flow_maps(maps, out / "gradflow.png",
                                                      title=f"{result.data.name}: ‖∂E_t/∂h_k‖, first test sequence")
    return paths


def gradflow_sequence(data: T.TaskData, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One test sequence x (T, D), y (T, O).

    A series window's unscored steps still have true next-value targets, so every row is kept;
    the adding problem has no target before its last step, so those rows get NaN (left blank).
    """
    if not 0 <= index < data.test.n:
        raise BPTTError(f"sequence index {index} is out of range; the test split has {data.test.n} sequences (0..{data.test.n - 1})")
    x = data.test.x[:, index]
    y = data.test.y[:, index].copy()
    if data.test.mask is not None and data.series is None:
        y[~data.test.mask[:, index]] = np.nan
    return x, y


def gradflow_pair(model: RNN, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The model's map and the map of the same weights with the other hidden activation (sigmoid <-> tanh).

    Rows whose target is NaN (unscored steps) are NaN.
    """
    other = "tanh" if model.hidden_activation != "tanh" else "sigmoid"
    twin = RNN(model.input_size, model.hidden_size, model.output_size, other, model.output_activation, model.dtype)
    twin.set_params(**model.params())
    rows = ~np.any(np.isnan(y), axis=-1)  # (T,)
    y0 = np.where(np.isnan(y), 0.0, y)
    out = {}
    for label, m in ((f"{model.hidden_activation} (as trained)", model), (f"{other} (same weights)", twin)):
        G = gradient_flow(m, x, y0)
        G[~rows] = np.nan
        out[label] = G
    return out


def now() -> float:
    return time.perf_counter()


# ---------------------------------------------------------------- command line (bptt train / predict / gradflow)
def run_cli(cfg: TrainConfig | None, out: str | Path, force: bool = False, resume: bool = False, progress: bool = True) -> int:
    """`bptt train`: check the folder, train with a progress bar, write model, metrics and plots.

    Every check (folder, settings, task data) happens before anything is written.
    """
    from rich.console import Console

    con = Console(highlight=False)
    out = Path(out)
    if resume:
        if not out.is_dir():
            raise BPTTError(f"{out}: no such folder to resume; give the --out folder of the run to continue")
        cfg = load_checkpoint(out)[0]
    else:
        assert cfg is not None
        bio.check_out_dir(out, force, can_resume=True)
    cfg.validate()
    data = load_task(cfg)  # bad task input fails here, before the folder is touched
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        bio.atomic_write_json(out / "config.json", cfg.to_json())
        model0 = RNN(data.input_size, cfg.hidden_size, data.output_size, cfg.hidden_activation, cfg.output_activation,
                     np.dtype(cfg.dtype), seed=cfg.seed)
        # an epoch-0 checkpoint, so that a run killed before its first checkpoint can still be resumed
        save_checkpoint(out, cfg, model0, make_optimizer(cfg, model0.params()),
                        {"epoch": 0, "step": 0, "train_loss": [], "val_loss": [], "best_val": None,
                         "best_epoch": 0, "bad_epochs": 0, "stopped_early": False}, model0.params())

    batches = math.ceil(data.train.n / cfg.batch_size)
    con.print(f"[bold]bptt train[/bold] task={cfg.task} hidden={cfg.hidden_size} ({cfg.hidden_activation}) "
              f"optimizer={cfg.optimizer} lr={cfg.lr} epochs={cfg.epochs} batches/epoch={batches} seed={cfg.seed} -> {out}"
              + ("  (resumed)" if resume else ""))
    live = progress and con.is_terminal
    every = max(1, cfg.epochs // 10)
    t0 = time.perf_counter()
    if live:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(TextColumn("epoch {task.fields[epoch]}/" + str(cfg.epochs)), BarColumn(), MofNCompleteColumn(),
                       TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"), TimeElapsedColumn(),
                       TimeRemainingColumn(), console=con, transient=False)
        tid = bar.add_task("train", total=cfg.epochs * batches, epoch=0, loss="-", val="-")

        def report(info: dict[str, Any]) -> None:
            if info.get("done"):
                bar.update(tid, val=f"{info['val_loss']:.5g}")
            else:
                bar.update(tid, completed=(info["epoch"] - 1) * batches + info["batch"], epoch=info["epoch"],
                           loss=f"{info['loss']:.5g}")

        with bar:
            result = train(cfg, out, resume=resume, progress=report, data=data)
    else:

        def report(info: dict[str, Any]) -> None:
            if progress and info.get("done") and (info["epoch"] % every == 0 or info["epoch"] == cfg.epochs):
                print(f"epoch {info['epoch']}/{cfg.epochs}  train loss {info['train_loss']:.5g}  val loss {info['val_loss']:.5g}",
                      flush=True)

        result = train(cfg, out, resume=resume, progress=report, data=data)
    paths = write_outputs(result, out)
    elapsed = time.perf_counter() - t0
    from rich.table import Table

    t = Table(title=f"{cfg.task}: test set (model of epoch {result.metrics['best_epoch']}, "
              f"lowest validation loss; {result.metrics['epochs_run']} epochs, {elapsed:.1f} s)", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in result.metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("best_epoch", "epochs_run"):
            t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    con.print(t)
    con.print("wrote " + ", ".join(str(p.name) for p in paths.values()) + f" in {out}")
    return 0


def _ints(text: str, option: str) -> list[int]:
    out = []
    for part in str(text).split(","):
        try:
            out.append(int(part.strip()))
        except ValueError:
            raise BPTTError(f"{option}: {part.strip()!r} is not an integer; write e.g. {option} 12,200") from None
    return out


def _steps(text: str, d: int) -> np.ndarray:
    """'0.3:0,0.7:1' -> (T, d).  Steps by commas, a step's inputs by colons."""
    rows = []
    for i, step in enumerate(str(text).split(",")):
        parts = step.split(":")
        if len(parts) != d:
            raise BPTTError(f"--x: step {i + 1} ({step!r}) has {len(parts)} inputs but the model takes {d}; "
                            f"write each step as {':'.join(['v'] * d)}")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise BPTTError(f"--x: step {i + 1} ({step!r}) is not numeric") from None
        if not all(math.isfinite(v) for v in vals):
            raise BPTTError(f"--x: step {i + 1} ({step!r}) is not finite")
        rows.append(vals)
    return np.array(rows, dtype=np.float64)  # (T, d)


def predict_cli(model_dir: str | Path, x: str | None = None, csv: str | None = None, column: str | None = None,
                a: str | None = None, b: str | None = None, as_json: bool = False) -> int:
    """`bptt predict`: binary sums, or one-step-ahead predictions in the data's own units."""
    model, info = bio.load_model(model_dir)
    task = info.get("task")
    scaling = T.Scaling(**info["scaling"]) if info.get("scaling") else None
    if a is not None or b is not None:
        if task != "binary-addition":
            raise BPTTError(f"--a/--b are for binary-addition models; this model was trained on {task!r}")
        if a is None or b is None:
            raise BPTTError("give both --a and --b (comma-separated integers of equal count)")
        A, B = _ints(a, "--a"), _ints(b, "--b")
        if len(A) != len(B):
            raise BPTTError(f"--a has {len(A)} numbers but --b has {len(B)}; give them in pairs")
        bits = int(info["task_info"]["bits"])
        for v, opt in [(v, "--a") for v in A] + [(v, "--b") for v in B]:
            if not 0 <= v < (1 << bits):
                raise BPTTError(f"{opt}: {v} does not fit in {bits} bits; give integers in 0..{(1 << bits) - 1}")
        xs, _ = T.addition_sequences(A, B, bits)
        got = T.bits_to_int(model.predict(xs.astype(model.dtype))[..., 0] > 0.5)
        rows = [{"a": p, "b": q, "network": int(g), "true": p + q, "exact": int(g) == p + q} for p, q, g in zip(A, B, got)]
        if as_json:
            print(json.dumps(rows))
        else:
            for r in rows:
                print(f"{r['a']} + {r['b']} = {r['network']}  ({'exact' if r['exact'] else 'WRONG, true ' + str(r['true'])})")
        return 0
    if csv is not None or column is not None:
        if csv is None or column is None:
            raise BPTTError("give both --csv FILE and --column NAME")
        if x is not None:
            raise BPTTError("give the input either with --x or with --csv/--column, not both")
        (vals,) = T.read_csv_columns(csv, [column])
        if len(vals) == 0:
            raise BPTTError(f"{csv}: column {column!r} has no values")
        xv = vals[:, None]  # (T, 1)
    elif x is not None:
        xv = _steps(x, model.input_size)
    elif task == "sunspots":
        years, series = T.sunspots_series()
        w = int(info["task_info"]["window"])
        xv = series[-w:, None]
    else:
        raise BPTTError("give the input: --x V1,V2,... (or --csv FILE --column NAME; --a/--b for binary-addition)")
    if xv.shape[1] != model.input_size:
        raise BPTTError(f"the input has {xv.shape[1]} values per step but the model takes {model.input_size}; use --x with a:b steps")
    xin = scaling.to_unit(xv) if scaling else xv  # (T, D)
    pred = model.predict(xin.astype(model.dtype)).astype(np.float64)  # (T, O)
    pred_u = scaling.from_unit(pred) if scaling else pred
    series_model = scaling is not None
    out = {"task": task, "inputs": xv.tolist(), "predictions": pred_u.tolist(),
           "units": "the data's own units" if series_model else "model outputs"}
    if series_model:
        out["next"] = float(pred_u[-1, 0])
    if as_json:
        print(json.dumps(out))
        return 0
    for t in range(len(xv)):
        xs_ = ", ".join(f"{v:.6g}" for v in xv[t])
        ps = ", ".join(f"{v:.6g}" for v in pred_u[t])
        print(f"t={t + 1:4d}  x={xs_:>12}  " + (f"next predicted={ps}" if series_model else f"y'={ps}"))
    if series_model:
        print(f"forecast of the value after the last input: {out['next']:.6g}")
    return 0


def decay_summary(G: np.ndarray, lags: tuple[int, ...] = (1, 2, 5, 10, 20, 40)) -> dict[str, float]:
    """Median over t of ||∂E_t/∂h_{t-lag}|| / ||∂E_t/∂h_t||: the error signal left after `lag` steps back."""
    out = {}
    for lag in lags:
        if lag >= G.shape[0]:
            break
        r = [G[t, t - lag] / G[t, t] for t in range(lag, G.shape[0]) if np.isfinite(G[t, t]) and G[t, t] > 0]
        if r:
            out[str(lag)] = float(np.median(r))
    return out


def gradflow_cli(out: str | Path, force: bool = False, model: str | None = None, index: int = 0, hidden: int = 16,
                 length: int = 40, init_scale: float = 1.0, seed: int = 0, as_json: bool = False,
                 x: str | None = None, y: str | None = None) -> int:
    """`bptt gradflow`: the ‖∂E_t/∂h_k‖ heat maps, sigmoid and tanh side by side, and a decay summary.

    With ``model``: one test sequence of its task (``index``) or the user's ``x`` (and ``y``; for a
    series model the inputs are x_1..x_{T-1} and the targets x_2..x_T, in the data's units).
    """
    from . import plots

    out = Path(out)
    if out.exists() and not force:
        raise BPTTError(f"{out} exists; give another --out or --force to overwrite it")
    if out.suffix.lower() != ".png":
        raise BPTTError(f"--out {out}: the heat map is written as PNG; give a file name ending in .png")
    if not out.parent.is_dir():
        raise BPTTError(f"--out {out}: folder {out.parent} does not exist")
    if (x is not None or y is not None) and model is None:
        raise BPTTError("--x/--y need --model (without it, gradflow draws random networks on random data)")
    if model is not None and x is not None:
        m, info = bio.load_model(model)
        xv = _steps(x, m.input_size)  # (T, D)
        scaling = T.Scaling(**info["scaling"]) if info.get("scaling") else None
        if y is None:
            if scaling is None or m.input_size != 1:
                raise BPTTError("give --y targets, one per step of --x (only series models take the next values as targets)")
            if len(xv) < 2:
                raise BPTTError("--x needs at least 2 values: the targets are the next values")
            u = scaling.to_unit(xv)
            xs_, ys_ = u[:-1], u[1:]  # (T-1, 1): predict each next value
        else:
            yv = _steps(y, m.output_size)
            if len(yv) != len(xv):
                raise BPTTError(f"--x has {len(xv)} steps but --y has {len(yv)}; give one target per step")
            xs_ = scaling.to_unit(xv) if scaling else xv
            ys_ = scaling.to_unit(yv) if scaling else yv
        maps = gradflow_pair(m, xs_, ys_)
        title = f"{info.get('task', 'model')}, your sequence: ‖∂E_t/∂h_k‖"
    elif model is not None:
        m, info = bio.load_model(model)
        if "config" not in info:
            raise BPTTError(f"{model}: the model file does not say which task it was trained on; gradflow --model needs a `bptt train` model")
        cfg = TrainConfig.from_json(info["config"])
        data = load_task(cfg)
        x, y = gradflow_sequence(data, index)
        maps = gradflow_pair(m, x, y)
        title = f"{cfg.task}, test sequence {index}: ‖∂E_t/∂h_k‖"
    else:
        for name, v, lo in (("--hidden", hidden, 1), ("--length", length, 2), ("--seed", seed, 0)):
            if v < lo:
                raise BPTTError(f"{name} must be >= {lo}, got {v}")
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise BPTTError(f"--init-scale must be a positive number, got {init_scale}")
        base = RNN(1, hidden, 1, "sigmoid", "sigmoid", seed=seed)
        params = {k: v * init_scale for k, v in base.params().items()}
        base.set_params(**params)
        rng = np.random.default_rng([seed, 7])
        x = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
        y = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
        maps = gradflow_pair(base, x, y)
        maps = {k.replace(" (as trained)", " (random init)"): v for k, v in maps.items()}
        title = f"random network, H={hidden}, init ×{init_scale:g}, seed {seed}: ‖∂E_t/∂h_k‖"
    plots.gradient_flow_maps(maps, out, title=title)
    summary = {label: decay_summary(G) for label, G in maps.items()}
    if as_json:
        print(json.dumps({"out": str(out), "decay": summary}))
    else:
        print("median over t of ||dE_t/dh_(t-lag)|| / ||dE_t/dh_t||:")
        for label, d in summary.items():
            print(f"  {label:28s} " + "  ".join(f"lag {k}: {v:.3g}" for k, v in d.items()))
        print(f"wrote {out}")
    return 0
