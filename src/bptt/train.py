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
import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import io as bio
from . import tasks
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
        check_choice("task", self.task, tasks.TASKS)
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


def config_for(task: str, task_options: dict[str, Any] | None = None, **settings: Any) -> TrainConfig:
    """TrainConfig for ``task``: TrainConfig's defaults, then the task record's defaults
    (``tasks.get(task).defaults``), then ``settings``.  ``task_options`` go to ``tasks.load``."""
    record = tasks.check_options(task, dict(task_options or {}))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for k in settings:
        if k not in fields:
            raise BPTTError(f"unknown training setting {k!r}; the settings are {', '.join(sorted(fields))}")
    cfg = TrainConfig(task=task, task_options=dict(task_options or {}), **{**record.defaults.settings(), **settings})
    cfg.validate()
    return cfg


def load_task(cfg: TrainConfig) -> tasks.TaskData:
    """The task's data for this config (seeded by cfg.seed); options checked against the task's record."""
    return tasks.load(cfg.task, seed=cfg.seed, **cfg.task_options)


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


def evaluate(model: RNN, split: tasks.Split, batch: int = 4096) -> float:
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
    data: tasks.TaskData
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    config: TrainConfig


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    data: tasks.TaskData | None = None,
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
    m = tasks.metrics(data, final)
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
    from . import gradflow, plots

    out = Path(out)
    paths = {"model": out / "model.npz", "metrics": out / "metrics.json"}
    bio.save_model(paths["model"], result.model, model_info(result))
    metrics = {"task": result.data.name, "task_info": result.data.info, "config": result.config.to_json(),
               "history": result.history, "test": result.metrics}
    bio.atomic_write_json(paths["metrics"], metrics)
    paths["loss_plot"] = plots.loss_curves(result.history, out / "loss.png", title=f"{result.data.name}: loss per epoch")
    paths["predictions_plot"] = plots.predictions(result.data, result.model, result.metrics, out / "predictions.png")
    x, y = gradflow.gradflow_sequence(result.data)
    maps = gradflow.gradflow_pair(result.model, x, y)
    paths["gradflow_plot"] = plots.gradient_flow_maps(maps, out / "gradflow.png",
                                                      title=f"{result.data.name}: ‖∂E_t/∂h_k‖, first test sequence")
    return paths
