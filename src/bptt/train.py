"""Training the seed's network: one loop for every gradient backend, data-parallel included.

One flat loop (``train``), in the spirit of nanoGPT's train.py: read it top to
bottom to know everything a run does.

    for epoch:
        (task option fresh 1: a new training set, drawn from (seed, epoch); validation and test stay fixed)
        shuffle the training sequences with rng([seed, epoch])
        for each mini-batch (T, B, D):
            h = None (zeros)
            for each chunk of `chunk` steps (the whole sequence when chunk is None):
                loss, grads, h = backend.loss_and_grad(params, chunk, h)   (the mini-batch's mean loss)
                clip grads to global norm `clip`; lr from the schedule; optimizer step (numpy, bptt.optim)
                h: the chunk's last hidden state, carried       (truncated BPTT over long streams)
        validation loss (rank 0's, on every rank); early stopping on it; checkpoint every `checkpoint_every` epochs

Backends (``bptt.backends``; ``cfg.backend``) only compute a chunk's loss and gradient (or, the
compiled one, a whole update): bptt's engine or the torch layer, data-parallel as a branch of the
torch backend (``bptt.ddp`` starts the process group); every rank takes the same numpy optimizer
step, so the replicas stay bit-identical, and rank 0 alone writes files.  The loss is the model's
(``losses.py``), the mean over scored steps of E(y'_t, y_t).

Ensembles (``cfg.ensemble`` K > 1, ``train_ensemble``): K networks that differ only in their seed,
member k seeded 10 seed + k (on the data of ``seed``), each trained by ``train`` in out/members/k/;
the result predicts the members' mean (``bptt.model.Ensemble``) and its metrics are the task's on it.

Reproducibility: the model is initialised from ``seed``, the shuffle of epoch e is
drawn from ``np.random.default_rng([seed, e])`` (and a fresh training set from the task's
``tasks.training_set(task, seed, e)``), and the checkpoint holds the
parameters, the optimizer state, the history and the early-stopping state.  So a
run resumed from a checkpoint ends with exactly (bit for bit) the parameters of
an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import hf, signals
from . import io as bio
from . import inits, losses, tasks
from . import activations
from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .validation import (MAX_INT, TRAINING_COPIES, BPTTError, check_checkpoint, check_choice, check_dtype, check_int, check_memory,
                         check_network_size, check_number, check_seed, check_sizes, short_repr)
from .engine import PARAM_NAMES
from .model import RNN, Ensemble
from .backends import BACKENDS, Backend, make_backend
from .optim import (OPTIMIZERS, SCHEDULES, Adam, AdamSettings, SGD, SGDSettings, clip_global_norm, lr_at,  # noqa: F401
                    make_optimizer)



def check_task_options(task: str, options: Any) -> None:
    """task_options: an object of the task's own options, each of its option's type (a config or checkpoint read
    back may hold a list, null or text where a number belongs: one line, never a crash in the task's loader)."""
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise BPTTError(f"task_options must be an object of option names to values, got {short_repr(options)}")
    record = tasks.check_options(task, options)
    for name, value in options.items():
        kind = record.option(name).type  # type: ignore[union-attr]
        where = f"task option {name}"
        if kind is int:
            check_int(where, value, -MAX_INT, MAX_INT, what="an integer")
        elif kind is float:
            check_number(where, value)
        elif value is not None and not isinstance(value, str):
            raise BPTTError(f"{where} must be text, got {short_repr(value)}")
        if record.option(name).training:  # type: ignore[union-attr]
            tasks.check_training_option(name, value)


# HF's damping lambda, structural damping mu and l2 enter every curvature product as (l2 + lambda) v + mu lambda S v:
# beyond this, a step (about the gradient / lambda) changes no parameter, or the products overflow to inf/NaN (the
# run would end "successfully" without an update).  Typical values are 1e-4 .. 1e2.
MAX_HF_SCALE = 1e8


def check_hf_scale(settings: Any) -> None:
    for name in ("damping", "structural", "l2"):
        value = getattr(settings, name)
        if isinstance(value, (int, float)) and value > MAX_HF_SCALE:
            raise BPTTError(f"hf_{name} {value:g} is beyond {MAX_HF_SCALE:g}: HF's steps would change no parameter or "
                            f"its curvature products overflow; give --hf-{name} {MAX_HF_SCALE:g} or less (typically "
                            "1e-4 to 100)")
    if settings.structural * settings.damping > MAX_HF_SCALE:
        raise BPTTError(f"hf_structural x hf_damping = {settings.structural * settings.damping:g} is beyond "
                        f"{MAX_HF_SCALE:g}: the structural damping term would swamp the curvature; lower either")


# Mini-batches one compiled call runs (CompiledBackend.fused_steps): the Python work per batch is paid once
# per call, and progress, Ctrl-C and the time checks still come between calls.
STEPS_AT_ONCE = 64
MAX_NPROC = 64  # data-parallel processes on one machine, at most (each also needs its memory: bptt.ddp checks it)


@dataclass
class TrainConfig:
    """Every hyperparameter of a run.  ``task_options`` go to ``tasks.load`` (e.g. bits, length, window)."""

    task: str = "binary-addition"
    task_options: dict[str, Any] = field(default_factory=dict)
    hidden_size: int = 16
    hidden_activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    loss: str = losses.DEFAULT  # a name in bptt.losses.LOSSES, defined with output_activation
    dtype: str = "float64"
    optimizer: str = "adam"  # sgd | adam
    lr: float = 0.01
    sgd: SGDSettings = field(default_factory=SGDSettings)  # --optimizer sgd's own settings
    adam: AdamSettings = field(default_factory=AdamSettings)  # --optimizer adam's
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
    grad_checkpoint: int | str | None = None  # None | "sqrt" | k: keep every k-th hidden state in backward, recompute the rest
    backend: str = "numpy"  # where gradients come from: numpy (bptt's engine) | torch (bptt.torch.sigmoid_rnn)
    nproc: int = 1  # torch: data-parallel processes (ranks); the batch is global, split among them
    # optimizer "hf" (Hessian-free, bptt.hf): one HF iteration per epoch; lr, clip, schedule unused
    hf: hf.HFSettings = field(default_factory=hf.HFSettings)
    # an ensemble of K networks, predictions averaged (``train_ensemble``): member k is this config with
    # ensemble 1 and seed 10 seed + k (K > 1)
    ensemble: int = 1
    data_seed: int | None = None  # the task's data from this seed, not from ``seed`` (an ensemble member's)

    def validate(self) -> None:
        check_choice("task", self.task, tasks.TASKS)
        check_task_options(self.task, self.task_options)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for owner, cls in OWNERS.items():
            if not isinstance(getattr(self, owner), cls):
                raise BPTTError(f"{owner} settings must be a {cls.__module__}.{cls.__name__}, got "
                                f"{type(getattr(self, owner)).__name__}")
        self.sgd.validate()
        self.adam.validate()
        hf.check_settings(self)
        check_hf_scale(self.hf)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("backend", self.backend, BACKENDS)
        check_int("nproc", self.nproc, 1, MAX_NPROC, what=f"an integer from 1 to {MAX_NPROC} (data-parallel processes)")
        if self.nproc > 1 and self.backend != "torch":
            raise BPTTError(f"nproc {self.nproc} needs backend torch (data-parallel training runs on PyTorch)")
        check_checkpoint(self.grad_checkpoint, self.truncate)
        check_dtype(self.dtype)
        check_choice("hidden_activation", self.hidden_activation, HIDDEN_ACTIVATIONS)
        check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        losses.pair(losses.get(self.loss), activations.get(self.output_activation))
        check_sizes(1, self.hidden_size, 1)
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(self, name))
        check_seed(self.seed, none_ok=False)
        check_ensemble(self)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        for name in ("chunk", "truncate", "patience"):
            check_int(name, getattr(self, name), none_ok=True)
        check_number("lr", self.lr, 0, low_open=True)
        check_number("min_lr", self.min_lr, 0)
        check_number("clip", self.clip, 0, low_open=True, none_ok=True)
        if self.sgd.nesterov and (self.optimizer != "sgd" or self.sgd.momentum == 0):
            raise BPTTError("nesterov needs --optimizer sgd and a momentum > 0")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # nested by owner: {"sgd": {...}, "adam": {"betas": [...], ...}, "hf": {...}}
        d["adam"]["betas"] = list(self.adam.betas)
        for name, default in UNWRITTEN_DEFAULTS.items():  # a single network's files are as before ensembles existed
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TrainConfig":
        d = nest_settings(d)  # run folders written before the nesting hold flat keys (momentum, hf_damping, ...)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise BPTTError(f"unknown training settings {sorted(unknown)}; this config was written by another bptt version")
        for owner in OWNERS:
            if owner in d:
                d[owner] = owner_settings(owner, d[owner])
        return cls(**d)


# The settings each optimizer owns, nested in TrainConfig under its name; each field's metadata holds its
# flat keyword (config_for's momentum=, hf_damping=; config.json files written before the nesting) and
# its flag (bptt train generates the flags from these).
OWNERS: dict[str, type] = {"sgd": SGDSettings, "adam": AdamSettings, "hf": hf.HFSettings}
FLAT: dict[str, tuple[str, str]] = {f.metadata["flat"]: (owner, f.name)
                                    for owner, cls in OWNERS.items() for f in dataclasses.fields(cls)}


def nest_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with every flat keyword of an owner's field (momentum, betas, hf_damping, ...) folded into
    ``settings[owner]`` (a dict, or the owner's settings object, given beside them)."""
    out = {k: v for k, v in settings.items() if k not in FLAT}
    for key, value in settings.items():
        if key in FLAT:
            owner, name = FLAT[key]
            base = out.get(owner, {})
            base = dataclasses.asdict(base) if dataclasses.is_dataclass(base) else dict(base)
            out[owner] = {**base, name: value}
    return out


def _given_fields(value: Any) -> set[str]:
    """The field names given: a dict's keys, or every field of a settings object."""
    return set(value) if isinstance(value, dict) else {f.name for f in dataclasses.fields(value)}


def owner_settings(owner: str, value: Any):
    """The owner's settings object from itself or a dict of its fields (an unknown field: one line naming
    the known ones)."""
    cls = OWNERS[owner]
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise BPTTError(f"{owner} settings must be an object of {owner}'s settings, got {short_repr(value)}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise BPTTError(f"unknown {owner} setting(s) {', '.join(unknown)}; the settings are {', '.join(known)}")
    return cls(**value)


# Settings left out of config.json, checkpoints and model files while they have these values.
UNWRITTEN_DEFAULTS = {"ensemble": 1, "data_seed": None, "loss": losses.DEFAULT}


def check_ensemble(cfg: TrainConfig) -> None:
    """cfg.ensemble: an integer 1..MAX_ENSEMBLE; members' seeds 10 seed + k in range; not data-parallel; data_seed."""
    K = cfg.ensemble
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or not 1 <= K <= bio.MAX_ENSEMBLE:
        raise BPTTError(f"ensemble must be an integer from 1 to {bio.MAX_ENSEMBLE} (networks whose predictions are "
                        f"averaged), got {short_repr(K)}; give --ensemble K with 1 <= K <= {bio.MAX_ENSEMBLE} (1: one network)")
    check_seed(cfg.data_seed, none_ok=True)
    if K == 1:
        return
    if 10 * cfg.seed + K - 1 > 2**63 - 1:
        raise BPTTError(f"seed {cfg.seed} with ensemble {K}: the members' seeds 10 seed + k exceed 2^63 - 1; "
                        f"give a seed below {(2**63 - K) // 10 + 1}")
    if cfg.nproc > 1:
        raise BPTTError(f"ensemble {K} with nproc {cfg.nproc} is not supported: an ensemble's members train one after "
                        "another in one process; leave --nproc out (or 1), or give --ensemble 1")


def config_for(task: str, task_options: dict[str, Any] | None = None, **settings: Any) -> TrainConfig:
    """TrainConfig for ``task``: TrainConfig's defaults, then the task record's defaults for the chosen
    optimizer (``tasks.get(task).defaults.settings(optimizer)``), then ``settings``.  ``task_options``
    go to ``tasks.load``, over the record's task options for that optimizer (its ``task_options``).  HF's
    settings: ``hf=HFSettings(...)`` or a dict of its fields, or flat ``hf_<name>=`` keywords (as the flags
    --hf-<name> read)."""
    record = tasks.check_options(task, dict(task_options or {}))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = nest_settings(record.defaults.settings(settings.get("optimizer")))
    given = nest_settings(settings)
    for k in given:
        if k not in fields:
            raise BPTTError(f"unknown training setting {k!r}; the settings are {', '.join(sorted(fields))}")
    optimizer = given.get("optimizer", merged.get("optimizer", TrainConfig.optimizer))
    for owner in OWNERS:  # another optimizer's settings would be silently unused: refused
        if owner in given and owner != optimizer:
            names = [f.metadata["flag"] or f.metadata["flat"] for f in dataclasses.fields(OWNERS[owner])
                     if f.name in _given_fields(given[owner])]
            raise BPTTError(f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} {owner}'s setting"
                            f"{'' if len(names) == 1 else 's'} but the optimizer is {optimizer}; give --optimizer "
                            f"{owner}, or leave {'it' if len(names) == 1 else 'them'} out")
    for owner in OWNERS:  # the given settings over the task's, field by field
        if owner in merged and owner in given:
            given[owner] = {**dataclasses.asdict(owner_settings(owner, merged[owner])),
                            **dataclasses.asdict(owner_settings(owner, given[owner]))}
    merged.update(given)
    for owner in OWNERS:
        if owner in merged:
            merged[owner] = owner_settings(owner, merged[owner])
    # a task's defaults for one optimizer may set task options (HF: fresh training sets); given ones win
    options = {**merged.pop("task_options", {}), **dict(task_options or {})}
    cfg = TrainConfig(task=task, task_options=options, **merged)
    cfg.validate()
    return cfg


def load_task(cfg: TrainConfig) -> tasks.TaskData:
    """The task's data for this config (seeded by cfg.seed, or cfg.data_seed when given); options checked
    against the task's record, and its size against this machine's memory before anything is generated."""
    options = task_options(cfg)
    check_task_size(cfg.task, options)
    return tasks.load(cfg.task, seed=cfg.seed if cfg.data_seed is None else cfg.data_seed, **cfg.task_options)


def task_options(cfg: TrainConfig) -> dict[str, Any]:
    """The task's options as its loader gets them: the record's defaults under cfg.task_options."""
    record = tasks.TASKS[check_choice("task", cfg.task, tasks.TASKS)]
    return {**{o.name: o.default for o in record.options if not o.required}, **cfg.task_options}


# Memory per (step, sequence) while a generated task is built: its inputs and targets (D + O floats, a few for
# the synthetic tasks), the generator's temporaries, the splits and their copies in the training dtype.
TASK_BYTES_PER_STEP = 256
STEP_OPTIONS = ("length", "window")  # a sequence's length, where a task has one of these (bits: bits + 1)
COUNT_OPTIONS = ("n_train", "n_val", "n_test")


def check_task_size(task: str, options: dict[str, Any]) -> None:
    """Refuse, before generating anything, a task whose sequences (steps x sequences) cannot fit in memory here.

    Bounds only what its integer options say (--length/--window/--bits, --n-train/--n-val/--n-test); a task
    without them (a file's, the shipped text) is bounded by its file."""
    ints = {k: v for k, v in options.items() if isinstance(v, int) and not isinstance(v, bool) and v > 0}
    steps = next((ints[k] for k in STEP_OPTIONS if k in ints), ints["bits"] + 1 if "bits" in ints else 1)
    count = sum(ints.get(k, 0) for k in COUNT_OPTIONS)
    if count:
        flags = "/".join(f"--{k.replace('_', '-')}" for k in COUNT_OPTIONS if k in options)
        shorter = next((f" or a shorter --{k}" for k in (*STEP_OPTIONS, "bits") if k in options), "")
        check_memory(f"task {task} with {count} sequences of {steps} steps", steps * count * TASK_BYTES_PER_STEP,
                     f"give fewer sequences ({flags}){shorter}")


# While training, a mini-batch keeps about this many floats per (step, sequence, hidden unit): the states and
# pre-activations of the forward pass and the deltas of the backward pass.
STATE_COPIES = 6


def check_training_size(cfg: TrainConfig, data: tasks.TaskData) -> None:
    """The network (with its gradients, optimizer moments, best copy) and one mini-batch's stored states fit in
    memory here; else one line naming the limit and the option that gets under it.  Checked before allocating."""
    itemsize = np.dtype(cfg.dtype).itemsize
    check_network_size(data.input_size, cfg.hidden_size, data.output_size, itemsize, copies=TRAINING_COPIES,
                       what="training the network")
    T = data.train.x.shape[0] if cfg.chunk is None else min(cfg.chunk, data.train.x.shape[0])
    if cfg.grad_checkpoint is not None:  # ~2 sqrt(T) (or T / k + k) states kept
        k = max(1, math.isqrt(T)) if cfg.grad_checkpoint == "sqrt" else int(cfg.grad_checkpoint)
        T = min(T, T // k + k)
    B = min(cfg.batch_size, data.train.n)
    check_memory(f"a mini-batch of {B} sequences of {T} stored steps with {cfg.hidden_size} hidden units",
                 T * B * (cfg.hidden_size + data.output_size) * itemsize * STATE_COPIES,
                 "give a smaller --batch-size, a --chunk, or --grad-checkpoint sqrt")


# ---------------------------------------------------------------- evaluation
def evaluate(model: RNN, split: tasks.Split, batch: int = 4096) -> float:
    """The model's loss (mean of E(y', y) over scored steps) on a whole split, full sequences."""
    total, count = 0.0, 0
    for lo in range(0, split.n, batch):
        x = split.x[:, lo : lo + batch].astype(model.dtype)  # (T, b, D)
        y = split.y[:, lo : lo + batch]  # (T, b, O)
        if isinstance(model, RNN):
            fwd = model.forward(x)
            r2 = model.criterion.value(fwd.u, fwd.y_pred, y)  # (T, b)
        else:  # an ensemble: the loss of the members' mean prediction, from y' alone
            r2 = model.criterion.value(None, model.predict(x), y)  # (T, b)
        if split.mask is None:
            total += float(r2.sum())
            count += r2.size
        else:
            m = split.mask[:, lo : lo + batch]
            total += float(r2[m].sum())
            count += int(m.sum())
    return total / max(count, 1)


# ---------------------------------------------------------------- gradient backends
# ---------------------------------------------------------------- checkpoints
def _checkpoint_path(out: Path) -> Path:
    return out / "checkpoint.npz"


def new_state() -> dict[str, Any]:
    """The loop's state before the first epoch (what a checkpoint stores beside the arrays)."""
    return {"epoch": 0, "step": 0, "train_loss": [], "val_loss": [], "best_val": None,
            "best_epoch": 0, "bad_epochs": 0, "stopped_early": False}


def _checked_state(state: Any, path: Path) -> dict[str, Any]:
    """A checkpoint's loop state, field by field (a damaged one is one line, not a crash mid-run)."""
    def bad(what: str) -> BPTTError:
        return BPTTError(f"{path}: checkpoint state {what}; the file is damaged, start again without --resume")

    optional = {"max_rank_diff"}  # written by data-parallel runs at the end
    if not isinstance(state, dict) or not set(new_state()) <= set(state) <= set(new_state()) | optional:
        raise bad(f"must have the fields {', '.join(sorted(new_state()))}")
    if "max_rank_diff" in state and not isinstance(state["max_rank_diff"], (int, float)):
        raise bad(f"max_rank_diff must be a number, got {state['max_rank_diff']!r}")
    for name in ("epoch", "step", "best_epoch", "bad_epochs"):
        if isinstance(state[name], bool) or not isinstance(state[name], int) or state[name] < 0:
            raise bad(f"{name} must be a non-negative integer, got {state[name]!r}")
    for name in ("train_loss", "val_loss"):
        v = state[name]
        if not (isinstance(v, list) and len(v) == state["epoch"]
                and all(isinstance(e, (int, float)) and math.isfinite(e) for e in v)):
            raise bad(f"{name} must list one finite loss per epoch run")
    if state["best_val"] is not None and not isinstance(state["best_val"], (int, float)):
        raise bad(f"best_val must be a number, got {state['best_val']!r}")
    if not isinstance(state["stopped_early"], bool):
        raise bad(f"stopped_early must be true or false, got {state['stopped_early']!r}")
    return state


def save_checkpoint(out: Path, cfg: TrainConfig, params: dict[str, np.ndarray], opt, state: dict[str, Any],
                    best: dict[str, np.ndarray]) -> None:
    """out/checkpoint.npz: parameters, optimizer state, best parameters, the config and the loop's state."""
    arrays = {f"param.{k}": v for k, v in params.items()}
    arrays.update({f"opt.{k}": v for k, v in opt.state().items()})
    arrays.update({f"best.{k}": v for k, v in best.items()})
    meta = {"format": bio.CHECKPOINT_FORMAT, "version": bio.VERSION, "config": cfg.to_json(), "state": state, "opt_t": opt.t}
    bio.save_arrays(_checkpoint_path(out), arrays, meta)


def load_checkpoint(out: Path) -> tuple[TrainConfig, dict[str, np.ndarray], dict[str, np.ndarray], int, dict[str, Any], dict[str, np.ndarray]]:
    """Returns (config, params, optimizer arrays, optimizer step count, state, best params)."""
    p = _checkpoint_path(Path(out))
    if not p.exists():
        raise BPTTError(f"{out}: no checkpoint.npz to resume from; run without --resume (and with --force to reuse the folder)")
    arrays, meta = bio.load_arrays(p, bio.CHECKPOINT_FORMAT)
    try:
        cfg = TrainConfig.from_json(meta["config"])
        params = {k: arrays[f"param.{k}"] for k in PARAM_NAMES}
        best = {k: arrays[f"best.{k}"] for k in PARAM_NAMES}
        opt_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
        return cfg, params, opt_arrays, meta["opt_t"], _checked_state(meta["state"], p), best
    except (KeyError, TypeError) as e:
        raise BPTTError(f"{p}: checkpoint is incomplete (missing {e}); start the run again without --resume") from None


# ---------------------------------------------------------------- the loop
class Diverged(BPTTError):
    """Training ran away: a loss, gradient or parameter became non-finite.  Says where and what to change."""

    def __init__(self, cfg: "TrainConfig", epoch: int, step: int, what: str):
        clip = f"--clip {cfg.clip:g}" if cfg.clip is not None else "no clipping"
        super().__init__(f"training diverged at epoch {epoch}, update {step + 1} ({what.rstrip('.').split(';')[0]}); "
                         f"lower --lr (now {cfg.lr:g}) or clip harder (now {clip})")


def _check_checkpoint_arrays(out: Path, saved: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Every array the run needs is in the checkpoint, with its shape, finite: else one line naming it."""
    for name, ref in want.items():
        if name not in saved:
            raise BPTTError(f"{out}: checkpoint.npz lacks {name}; it is damaged or from another run, "
                            "start again without --resume (--force)")
        a = saved[name]
        if a.shape != ref.shape or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
            raise BPTTError(f"{out}: checkpoint.npz holds {name} of shape {a.shape} ({a.dtype}), the run needs "
                            f"{ref.shape} finite floats; it is damaged or from another run, start again without --resume")


@dataclass
class TrainResult:
    """A finished run.  An ensemble's: ``model`` is the ``Ensemble``, ``history`` {"members": [each member's
    history]}, ``metrics`` those of the mean prediction plus ``members``, and ``members`` each member's result."""

    model: RNN | Ensemble
    data: tasks.TaskData
    history: dict[str, Any]
    metrics: dict[str, Any]
    config: TrainConfig
    members: list["TrainResult"] | None = None


def init_model(cfg: TrainConfig, data: tasks.TaskData) -> RNN:
    """The numpy network, initialised from cfg.seed: the start of every backend's run (the task option init
    sparse: ``inits.sparse``'s weights)."""
    model = RNN(data.input_size, cfg.hidden_size, data.output_size, cfg.hidden_activation, cfg.output_activation,
                np.dtype(cfg.dtype), seed=cfg.seed, loss=cfg.loss)
    if tasks.training_option(cfg.task, cfg.task_options, "init") == "sparse":
        p = inits.sparse(data.input_size, cfg.hidden_size, data.output_size, cfg.hidden_activation, cfg.seed)
        model.set_params(**{k: v.astype(model.dtype) for k, v in p.items()})
    return model


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    data: tasks.TaskData | None = None,
    backend: Backend | None = None,
) -> TrainResult:
    """Train per ``cfg``.  With ``out``: config.json, checkpoints (out/checkpoint.npz); ``resume`` continues from it.

    progress(info) is called after every mini-batch, or every call of up to STEPS_AT_ONCE compiled ones
    ({"epoch", "batch", "batches", "loss"}), and after
    every epoch ({"epoch", "train_loss", "val_loss", "done": True}).  ``data``: the task's data when
    the caller has loaded it already (``load_task(cfg)``).  ``backend``: by default ``cfg.backend``'s;
    a torch backend in an initialised process group trains data-parallel (``bptt.ddp`` starts the
    group), and then only rank 0 writes to ``out``.
    Returns the model of the epoch with the lowest validation loss (model selection on the
    validation split, with or without early stopping), the history and the test metrics.
    cfg.ensemble > 1: ``train_ensemble`` (which calls this function once per member).
    """
    cfg.validate()
    if cfg.ensemble > 1:  # K networks, each trained by this function (train_ensemble)
        return train_ensemble(cfg, out, resume=resume, progress=progress, data=data, backend=backend)
    out = Path(out) if out is not None else None
    data = data if data is not None else load_task(cfg)
    check_training_size(cfg, data)  # before the backend or the network allocates anything
    dtype = np.dtype(cfg.dtype)
    backend = backend if backend is not None else make_backend(cfg, data.input_size, data.output_size)
    writes = out is not None and backend.rank == 0
    model = init_model(cfg, data)  # evaluates the validation split with the current parameters
    params = model.params()  # the optimizer updates these arrays in place
    opt = make_optimizer(cfg, params)
    Ttot, N = data.train.x.shape[0], data.train.n
    data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
    fresh = tasks.training_option(cfg.task, cfg.task_options, "fresh") == 1
    batches = math.ceil(N / cfg.batch_size)
    chunk = cfg.chunk or Ttot
    chunks = math.ceil(Ttot / chunk)
    total_steps = cfg.epochs * batches * chunks
    xs = data.train.x.astype(dtype)  # (T, N, D)
    ys = data.train.y.astype(dtype)  # (T, N, O)
    mask = data.train.mask  # (T, N) or None
    state = new_state()
    best = model.params()

    if resume:
        if out is None:
            raise BPTTError("resume needs the run's output folder")
        saved_cfg, saved_params, opt_arrays, opt_t, state, best = load_checkpoint(out)
        if saved_cfg.to_json() != cfg.to_json():
            raise BPTTError(f"{out}: the checkpoint was written with other settings; resume with the run's own config")
        _check_checkpoint_arrays(out, {**{f"param.{k}": v for k, v in saved_params.items()},
                                       **{f"best.{k}": v for k, v in best.items()}},
                                 {**{f"param.{k}": v for k, v in params.items()}, **{f"best.{k}": v for k, v in params.items()}})
        _check_checkpoint_arrays(out, {f"opt.{k}": v for k, v in opt_arrays.items()},
                                 {f"opt.{k}": v for k, v in opt.state().items()})
        check_int("checkpoint opt_t", opt_t, 0)
        try:
            opt.load_state(opt_arrays, opt_t)  # each optimizer refuses a state it cannot continue from
        except BPTTError as e:
            raise BPTTError(f"{out}: checkpoint.npz holds {e}; it is damaged, start again without --resume (--force)") from None
        for k in PARAM_NAMES:
            params[k][...] = saved_params[k]
    elif writes:
        out.mkdir(parents=True, exist_ok=True)
        bio.atomic_write_json(out / "config.json", cfg.to_json())
        save_checkpoint(out, cfg, params, opt, state, best)  # epoch 0: a run killed before its first checkpoint resumes
    backend.agree(0.0)  # every rank has read the checkpoint before rank 0 may write the next one

    fused_step = getattr(backend, "fused_step", None)
    fused_steps = getattr(backend, "fused_steps", None)
    run_epoch = getattr(opt, "run_epoch", None)  # gradient-step optimizers have step(), epoch runners run_epoch()
    while state["epoch"] < cfg.epochs and not state["stopped_early"]:
        epoch = state["epoch"] + 1
        signals.check()
        if fresh:  # this epoch's own sequences, from (data seed, epoch): a resumed run draws the same ones
            drawn = tasks.training_set(cfg.task, data_seed, epoch, **cfg.task_options)
            xs, ys, mask = drawn.x.astype(dtype), drawn.y.astype(dtype), drawn.mask
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(N)  # (N,): this epoch's order
        loss_sum, loss_n = 0.0, 0
        if run_epoch is not None:  # an epoch runner (Hessian-free, bptt.hf): the epoch in one call, no mini-batches
            loss_sum, loss_n = run_epoch(params, xs, ys, mask, perm)
            state["step"] += 1
            state["stopped_early"] = opt.out_of_time  # its time limit reached: this epoch is the last
        bi = 0
        # compiled: up to STEPS_AT_ONCE mini-batches in one call (whole sequences, no mask), the same bits
        while fused_steps and run_epoch is None and mask is None and chunk == Ttot and bi < batches:
            signals.check()  # a Ctrl-C whose KeyboardInterrupt was dropped inside a compiled call's machinery
            n_now = min(STEPS_AT_ONCE, batches - bi)
            ran = fused_steps(params, opt, xs, ys, perm, bi, [lr_at(cfg, state["step"] + j, total_steps)
                                                             for j in range(n_now)])
            if ran is None:
                break  # not covered: one batch at a time below
            losses, ns, error = ran
            for loss, n in zip(losses, ns):
                loss_sum += loss * n
                loss_n += n
            state["step"] += len(losses)
            bi += len(losses)
            if error is not None:
                raise Diverged(cfg, epoch, state["step"], error)
            if progress:
                progress({"epoch": epoch, "batch": bi, "batches": batches, "loss": loss_sum / max(loss_n, 1)})
        for bi in range(bi, batches if run_epoch is None else 0):
            signals.check()
            idx = perm[bi * cfg.batch_size : (bi + 1) * cfg.batch_size]
            xb, yb = xs[:, idx], ys[:, idx]  # (T, B, D), (T, B, O)
            mb = None if mask is None else mask[:, idx]  # (T, B)
            h = None  # zeros: each mini-batch starts afresh
            for c0 in range(0, Ttot, chunk):
                sl = slice(c0, c0 + chunk)
                try:
                    # a backend with fused_step may do the whole update (gradient, clip, optimizer) in one call
                    fused = fused_step and fused_step(params, opt, xb[sl], yb[sl], None if mb is None else mb[sl], h,
                                                      c0 + chunk < Ttot, lr_at(cfg, state["step"], total_steps))
                    if fused:
                        loss, h_next, n = fused
                        grads = None
                        loss_sum += loss * n
                        loss_n += n
                    else:
                        loss, grads, h_next, n = backend.loss_and_grad(
                            params, xb[sl], yb[sl], None if mb is None else mb[sl], h, need_state=c0 + chunk < Ttot,
                        )
                except BPTTError as e:  # the inputs were checked: only the parameters can have run away
                    raise Diverged(cfg, epoch, state["step"], str(e)) from None
                if grads is not None:
                    clip_global_norm(grads, cfg.clip)
                    lr = lr_at(cfg, state["step"], total_steps)
                    opt.step(params, grads, lr)
                    if not all(np.isfinite(v).all() for v in params.values()):
                        raise Diverged(cfg, epoch, state["step"], "a parameter became non-finite")
                    loss_sum += loss * n
                    loss_n += n
                state["step"] += 1
                h = h_next  # carried into the next chunk; no gradient flows back through it
            if progress:
                progress({"epoch": epoch, "batch": bi + 1, "batches": batches, "loss": loss_sum / max(loss_n, 1)})
        train_loss = loss_sum / max(loss_n, 1)
        model.set_params(**params)
        val_loss = backend.agree(evaluate(model, data.val))  # one value on every rank: early stopping agrees
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
        if writes and cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0:
            save_checkpoint(out, cfg, params, opt, state, best)
        if progress:  # after the epoch's checkpoint: a report of epoch e means a crash now resumes from e's state
            progress({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "done": True})
    if backend.world > 1:
        state["max_rank_diff"] = backend.max_rank_diff({**params, **{f"best.{k}": v for k, v in best.items()}})
    if writes:
        save_checkpoint(out, cfg, params, opt, state, best)
    return train_result(cfg, data, state, best)


def train_result(cfg: TrainConfig, data: tasks.TaskData, state: dict[str, Any], best: dict[str, np.ndarray]) -> TrainResult:
    """The result of a finished run from its state and best parameters (as the final checkpoint holds them)."""
    final = RNN(data.input_size, cfg.hidden_size, data.output_size, cfg.hidden_activation, cfg.output_activation,
                np.dtype(cfg.dtype), loss=cfg.loss)
    final.set_params(**best)
    history = {"train_loss": list(state["train_loss"]), "val_loss": list(state["val_loss"])}
    m = tasks.metrics(data, final)
    m.update(best_epoch=state["best_epoch"], best_val_loss=state["best_val"], epochs_run=state["epoch"],
             stopped_early=state["stopped_early"], updates=state["step"])
    if "max_rank_diff" in state:  # data-parallel: the largest parameter difference between replicas (0)
        m["max_rank_diff"] = state["max_rank_diff"]
    return TrainResult(final, data, history, m, cfg)


def result_from_checkpoint(out: str | Path, data: tasks.TaskData | None = None) -> TrainResult:
    """The TrainResult of the finished run whose final checkpoint is in ``out`` (data-parallel launchers read it)."""
    cfg, _, _, _, state, best = load_checkpoint(Path(out))
    return train_result(cfg, data if data is not None else load_task(cfg), state, best)


# ---------------------------------------------------------------- ensembles
def member_config(cfg: TrainConfig, k: int) -> TrainConfig:
    """Member k of the ensemble ``cfg``: the same settings with ensemble 1 and seed 10 cfg.seed + k.

    The seed of a random task's data stays the ensemble's (``data_seed``), so every member trains,
    selects and is tested on the same sequences and their predictions can be averaged; tasks with
    fixed data (sunspots, csv) need no data_seed, and member k is exactly
    ``config_for(task, options, seed=10 s + k, ...)``."""
    data_seed = cfg.data_seed
    if data_seed is None and tasks.get(cfg.task).seeded:
        data_seed = cfg.seed
    return dataclasses.replace(cfg, ensemble=1, seed=10 * cfg.seed + k, data_seed=data_seed)


def member_folder(out: Path, k: int) -> Path:
    """Where member k of the ensemble run in ``out`` keeps its config and checkpoints: out/members/k."""
    return Path(out) / bio.MEMBERS_DIR / str(k)


def train_ensemble(
    cfg: TrainConfig,
    out: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    data: tasks.TaskData | None = None,
    backend: Backend | None = None,
) -> TrainResult:
    """Train cfg.ensemble networks that differ only in their seed (``member_config``: seed 10 seed + k),
    each with ``train``, and average their predictions (``Ensemble``).

    With ``out``: out/config.json (this config), and member k's config and checkpoints in
    out/members/k/ (``member_folder``).  ``resume``: a member whose checkpoint is final runs no epoch,
    the interrupted one continues from its checkpoint, the rest start; the result equals an
    uninterrupted run's bit for bit.  ``progress`` gets each member's reports with "member" (k) and
    "members" (K) added.  The metrics are the task's on the mean prediction (``ensemble_result``).
    """
    cfg.validate()
    out = Path(out) if out is not None else None
    data = data if data is not None else load_task(cfg)
    K = cfg.ensemble
    if resume and out is None:
        raise BPTTError("resume needs the run's output folder")
    if out is not None and resume:
        if ensemble_config(out).to_json() != cfg.to_json():
            raise BPTTError(f"{out}: the run was started with other settings; resume with the run's own config")
    elif out is not None:
        out.mkdir(parents=True, exist_ok=True)
        bio.atomic_write_json(out / "config.json", cfg.to_json())
    members = []
    for k in range(K):
        mout = None if out is None else member_folder(out, k)
        report = None if progress is None else (lambda info, k=k: progress({**info, "member": k, "members": K}))
        started = mout is not None and _checkpoint_path(mout).is_file()
        members.append(train(member_config(cfg, k), mout, resume=resume and started, progress=report, data=data,
                             backend=backend))
    return ensemble_result(cfg, data, members)


def ensemble_result(cfg: TrainConfig, data: tasks.TaskData, members: list[TrainResult]) -> TrainResult:
    """The ensemble's result from its members': the task's metrics (``tasks.metrics``) of the mean prediction
    on the test split, the mean prediction's validation loss (``val_loss``, the seed's loss as in training)
    and MSE (``val_mse``, in the data's own units for scaled data), and each member's seed, kept epoch and
    scalar metrics (``members``)."""
    ens = Ensemble([r.model for r in members])
    m = tasks.metrics(data, ens)
    val = data.val
    pred = ens.predict(val.x.astype(ens.dtype)).astype(np.float64)  # (T, N, O)
    sc = data.scaling
    m.update(ensemble=len(members), member_seeds=[r.config.seed for r in members], val_loss=evaluate(ens, val),
             val_mse=tasks.masked_mse(sc.from_unit(pred), sc.from_unit(val.y), val.mask) if sc is not None
             else tasks.masked_mse(pred, val.y, val.mask))
    m["members"] = [{"member": k, "seed": r.config.seed,
                     **{n: v for n, v in r.metrics.items() if not isinstance(v, (list, dict))}}
                    for k, r in enumerate(members)]
    return TrainResult(ens, data, {"members": [r.history for r in members]}, m, cfg, members)


def ensemble_config(out: Path) -> TrainConfig:
    """The config.json of the ensemble run in ``out`` (its members' folders hold the checkpoints)."""
    p = Path(out) / "config.json"
    try:
        d = bio.strict_json_loads(p.read_text(encoding="utf-8"))
        cfg = TrainConfig.from_json(d) if isinstance(d, dict) else None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, TypeError):
        cfg = None
    if cfg is None:
        raise BPTTError(f"{p}: not a readable bptt config; the run's folder is damaged, start again without --resume")
    cfg.validate()
    return cfg


def run_config(out: str | Path) -> TrainConfig:
    """The config of the run in ``out``, to resume it: its checkpoint's, or for an ensemble (no checkpoint.npz
    of its own; its members' are in members/k/) its config.json's."""
    out = Path(out)
    if not _checkpoint_path(out).exists() and (out / "config.json").is_file():
        try:
            cfg = ensemble_config(out)
        except BPTTError:
            if (out / bio.MEMBERS_DIR).is_dir():
                raise
            cfg = None  # a single network's run killed before its first checkpoint: load_checkpoint says so
        if cfg is not None and cfg.ensemble > 1:
            return cfg
    return load_checkpoint(out)[0]


def model_info(result: TrainResult) -> dict[str, Any]:
    """What ``bptt predict`` needs beside the parameters: task, settings, scaling."""
    d = result.data
    return {
        "task": d.name,
        "task_info": d.info,
        "scaling": d.scaling.to_json() if d.scaling else None,
        "config": result.config.to_json(),
    }


def write_outputs(result: TrainResult, out: Path, plot_format: str = "png") -> dict[str, Path]:
    """model.npz, metrics.json and the plots (loss, predictions, gradflow; png, svg, pdf or none) in ``out``."""
    from . import plots

    out = Path(out)
    paths = {"model": out / "model.npz", "metrics": out / "metrics.json"}
    bio.save_model(paths["model"], result.model, model_info(result))
    metrics = {"task": result.data.name, "task_info": result.data.info, "config": result.config.to_json(),
               "history": result.history, "test": result.metrics}
    bio.atomic_write_json(paths["metrics"], metrics)
    paths.update(plots.write_run_plots(out, plot_format, history=result.history, data=result.data, model=result.model,
                                       metrics=result.metrics))  # an ensemble: every member's loss, member 0's gradflow
    return paths
