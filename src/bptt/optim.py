"""Optimizers, gradient clipping and the learning-rate schedule: numpy, one of each, for every backend.

    OPTIMIZERS    name -> factory(cfg, params): "sgd" (plain, momentum, Nesterov), "adam" and "hf"
                  (Hessian-free, ``bptt.hf.HessianFree``: an epoch runner, whole HF iterations on the data)
    SGDSettings, AdamSettings   their own settings (``TrainConfig.sgd``, ``.adam``; HF's: ``hf.HFSettings``)
    SCHEDULES     name -> lr(cfg, step, total_steps): "constant" and "cosine"
    make_optimizer(cfg, params), clip_global_norm(grads, max_norm), lr_at(cfg, step, total_steps)

The update rules are torch.optim's (``tests/test_train.py`` checks them to 1e-12).  The training
loop applies them in numpy on every backend and every rank, so data-parallel replicas that
receive the same all-reduced gradient take bit-identical steps.  ``cfg`` is any object with the
fields of ``bptt.train.TrainConfig`` that the function reads.

Fused updates: an optimizer with a compiled twin of its ``step`` (``_optim_compiled.py``) says so
with ``fused_update(lr, t)`` (a ``FusedUpdate``: the twin's code, its state arrays, its numbers);
the numpy backend's one-call training step (``backends.CompiledBackend``) asks for it.  An optimizer
without the method, or returning None (a subclass that changes ``step``), trains through its numpy
``step``, the loop's usual path: no optimizer runs as another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .hf import HessianFree
from .validation import BPTTError, check_choice, check_number, check_state_values


def setting(default: Any, help: str, flat: str, flag: str | None = None) -> Any:
    """A field of an owner's settings (``TrainConfig.sgd``, ``.adam``, ``.hf``): its command-line help, the
    flat keyword that ``config_for`` and old config.json files use for it, and its flag (None: no flag)."""
    return field(default=default, metadata={"help": help, "flat": flat, "flag": flag})


@dataclass(frozen=True)
class SGDSettings:
    """SGD's own settings: ``TrainConfig.sgd``."""

    momentum: float = setting(0.0, "sgd momentum (default 0)", "momentum", "--momentum")
    nesterov: bool = setting(False, "Nesterov momentum (sgd)", "nesterov", "--nesterov")

    def validate(self) -> None:
        check_number("momentum", self.momentum, 0, 1, high_open=True)
        if not isinstance(self.nesterov, bool):
            raise BPTTError(f"nesterov must be true or false, got {self.nesterov!r}")


@dataclass(frozen=True)
class AdamSettings:
    """Adam's own settings: ``TrainConfig.adam``."""

    betas: tuple[float, float] = setting((0.9, 0.999), "Adam's (beta1, beta2)", "betas")
    eps: float = setting(1e-8, "Adam's epsilon", "eps")

    def __post_init__(self):
        if isinstance(self.betas, list):  # read back from JSON
            object.__setattr__(self, "betas", tuple(self.betas))

    def validate(self) -> None:
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise BPTTError(f"adam betas must be two numbers in [0, 1), got {self.betas!r}")
        for b in self.betas:
            check_number("adam beta", b, 0, 1, high_open=True)
        check_number("eps", self.eps, 0, low_open=True)


class Optimizer(Protocol):
    t: int  # updates taken

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None: ...

    def state(self) -> dict[str, np.ndarray]: ...

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None: ...


# the compiled updates' codes (_optim_compiled.update's branches)
FUSED_ADAM = 0
FUSED_SGD = 1


@dataclass(frozen=True)
class FusedUpdate:
    """What the compiled training step needs of an optimizer for update number t.

    code     its branch of ``_optim_compiled.update``
    s1, s2   its state arrays by parameter name, updated in place (s2 may be s1 when it has one)
    numbers  (lr, c1, c2, beta1, beta2, eps, momentum, nesterov): the floats its update reads
    """

    code: int
    s1: dict[str, np.ndarray]
    s2: dict[str, np.ndarray]
    numbers: tuple[float, float, float, float, float, float, float, float]


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

    def fused_update(self, lr: float, t: int) -> FusedUpdate | None:
        """The compiled twin of ``step`` (``_optim_compiled._sgd``); None for a subclass with its own step."""
        if type(self).step is not SGD.step:
            return None
        return FusedUpdate(FUSED_SGD, self.v, self.v, (lr, 1.0, 1.0, 0.0, 0.0, 0.0, self.momentum, float(self.nesterov)))

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

    def fused_update(self, lr: float, t: int) -> FusedUpdate | None:
        """The compiled twin of ``step`` (``_optim_compiled._adam``) for update number t; None for a
        subclass with its own step."""
        if type(self).step is not Adam.step:
            return None
        c1, c2 = 1 - self.b1**t, 1 - self.b2**t
        return FusedUpdate(FUSED_ADAM, self.m, self.v, (lr, c1, c2, self.b1, self.b2, self.eps, 0.0, 0.0))

    def state(self) -> dict[str, np.ndarray]:
        return {**{f"m.{k}": a for k, a in self.m.items()}, **{f"v.{k}": a for k, a in self.v.items()}}

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None:
        """Refuses negative second moments (their square roots are taken)."""
        check_state_values("adam", arrays, {f"v.{k}": (lambda a: a >= 0, ">= 0") for k in self.v})
        self.m = {k: arrays[f"m.{k}"].copy() for k in self.m}
        self.v = {k: arrays[f"v.{k}"].copy() for k in self.v}
        self.t = t


# The one optimizer table: every backend, the config check and the command line read it.
OPTIMIZERS: dict[str, Callable[[Any, dict[str, np.ndarray]], Optimizer]] = {
    "sgd": lambda cfg, params: SGD(params, cfg.sgd.momentum, cfg.sgd.nesterov),  # plain, momentum, Nesterov
    "adam": lambda cfg, params: Adam(params, tuple(cfg.adam.betas), cfg.adam.eps),
    "hf": HessianFree.from_config,  # an epoch runner; settings: TrainConfig.hf (bptt.hf.HFSettings)
}


def make_optimizer(cfg: Any, params: dict[str, np.ndarray]) -> Optimizer:
    """The optimizer ``cfg.optimizer`` names, over ``params``; an unknown name is refused."""
    return OPTIMIZERS[check_choice("optimizer", cfg.optimizer, OPTIMIZERS)](cfg, params)


def clip_global_norm(grads: dict[str, np.ndarray], max_norm: float | None) -> float:
    """Scale all gradients by min(1, max_norm / ||g||), ||g|| over every parameter together.  Returns ||g|| before."""
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    if max_norm is not None and norm > max_norm:
        s = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= s
    return norm


def _cosine(cfg: Any, step: int, total_steps: int) -> float:
    frac = min(step / max(total_steps, 1), 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * frac))


SCHEDULES: dict[str, Callable[[Any, int, int], float]] = {
    "constant": lambda cfg, step, total_steps: cfg.lr,
    "cosine": _cosine,  # from lr to min_lr over all updates of the run
}


def lr_at(cfg: Any, step: int, total_steps: int) -> float:
    """Learning rate for update number ``step`` (0-based) of ``total_steps``."""
    return SCHEDULES[check_choice("schedule", cfg.schedule, SCHEDULES)](cfg, step, total_steps)
