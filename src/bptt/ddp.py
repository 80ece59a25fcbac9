r"""Data-parallel training of ``bptt.torch.SigmoidRNN`` on PyTorch's own distributed engine.

Each process (rank) holds a replica of the model, takes its share of every
global mini-batch, runs the layer's hand-written BPTT, and
``torch.nn.parallel.DistributedDataParallel`` averages the gradients across
ranks (all-reduce) before every optimizer step, so all replicas stay identical.

Loss (the seed's, over scored steps): for a global batch G of sequences with
n scored steps (all T |G| of them without a mask),

    Loss = (1/n) sum_{b in G} sum_{t scored} 1/2 ||y_tb - y'_tb||^2.

Rank r holds the part G_r and minimises L_r = (R/n) sum_{b in G_r} ..., R
ranks; DDP's gradient is the mean over ranks, (1/R) sum_r dL_r = dLoss, the
gradient of the whole global batch.  So R processes take the same steps as one
process on the same global batches, up to the rounding of the all-reduce.

Launch, on one machine (gloo backend over 127.0.0.1, a free port):

    python -m bptt.ddp --task sine --nproc 2 --epochs 5 --out run/
    bptt train --task sine --backend torch --nproc 2 --out run/      (the same path)

or with PyTorch's launcher, on one or several machines (env:// rendezvous):

    torchrun --standalone --nproc-per-node 2 -m bptt.ddp --task sine --epochs 5 --out run/

``--out`` gets model.npz (the numpy ``bptt.RNN`` format; ``bptt predict`` reads
it) and metrics.json (the loss of every update, and the largest parameter
difference between ranks at the end, which should be 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .validation import BPTTError
from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .engine import PARAM_NAMES
from .io import check_out_dir

OPTIMIZERS = ("sgd", "adam")


@dataclass
class DDPConfig:
    """Settings of a data-parallel run.  batch_size is the GLOBAL batch (None: all training sequences)."""

    hidden_size: int = 16
    hidden_activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    dtype: str = "float64"
    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.0  # sgd
    nesterov: bool = False  # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adam
    eps: float = 1e-8  # adam
    clip: float | None = None  # global gradient norm
    epochs: int = 10
    batch_size: int | None = None
    truncate: int | None = None
    checkpoint: Any = None  # None, "sqrt" or a segment length (SigmoidRNN's checkpoint=)
    seed: int = 0
    task_info: dict[str, Any] = field(default_factory=dict)  # carried into model.npz for `bptt predict`

    def validate(self) -> None:
        def pos_int(name: str, v: Any, none_ok: bool = False, minimum: int = 1) -> None:
            if v is None and none_ok:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
                raise BPTTError(f"{name} must be an integer >= {minimum}{' or None' if none_ok else ''}, got {v!r}")

        pos_int("hidden_size", self.hidden_size)
        pos_int("epochs", self.epochs)
        pos_int("batch_size", self.batch_size, none_ok=True)
        pos_int("truncate", self.truncate, none_ok=True)
        pos_int("seed", self.seed, minimum=0)
        if self.hidden_activation not in HIDDEN_ACTIVATIONS:
            raise BPTTError(f"hidden_activation {self.hidden_activation!r} is not supported; choose one of {', '.join(HIDDEN_ACTIVATIONS)}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise BPTTError(f"output_activation {self.output_activation!r} is not supported; choose one of {', '.join(OUTPUT_ACTIVATIONS)}")
        if self.dtype not in ("float32", "float64"):
            raise BPTTError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.optimizer not in OPTIMIZERS:
            raise BPTTError(f"optimizer {self.optimizer!r} is not supported; choose one of {', '.join(OPTIMIZERS)}")
        for name in ("lr", "eps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise BPTTError(f"{name} must be a finite number > 0, got {v!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise BPTTError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.clip is not None and not (isinstance(self.clip, (int, float)) and math.isfinite(self.clip) and self.clip > 0):
            raise BPTTError(f"clip must be a finite number > 0 or None, got {self.clip!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise BPTTError("nesterov needs optimizer sgd and a momentum > 0")
        if self.checkpoint is not None and self.truncate is not None:
            raise BPTTError("checkpoint and truncate cannot be combined; drop one of them")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclass
class DDPResult:
    """params: rank 0's final parameters; rank_params: every rank's; losses: global-batch loss of every update."""

    params: dict[str, np.ndarray]
    rank_params: list[dict[str, np.ndarray]]
    losses: list[float]
    max_rank_diff: float
    seconds: float
    nproc: int

    def to_numpy(self, input_size: int, output_size: int, cfg: DDPConfig):
        from .model import RNN

        m = RNN(input_size, cfg.hidden_size, output_size, cfg.hidden_activation, cfg.output_activation, np.dtype(cfg.dtype))
        m.set_params(**self.params)
        return m


def check_data(x: Any, y: Any, mask: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x (T, N, D), y (T, N, O), mask (T, N) bool or None; one-line errors otherwise."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2] or min(x.shape + y.shape) == 0:
        raise BPTTError(f"x must be (T, N, D) and y (T, N, O) with the same T and N >= 1, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise BPTTError("x and y must be finite (no NaN or inf)")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != x.shape[:2]:
            raise BPTTError(f"mask must be (T, N) = {x.shape[:2]}, got {mask.shape}")
    return x, y, mask


# ---------------------------------------------------------------- one rank's training loop
def run_rank(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None, cfg: DDPConfig) -> dict[str, Any]:
    """Train on this rank's shares.  Inside an initialised process group: DDP; otherwise one process.

    Every rank holds the whole data set and draws the same permutation, then takes its
    contiguous part of each global batch (np.array_split), so no data is exchanged.
    Returns {"params", "losses", "max_rank_diff"}.
    """
    import torch
    import torch.distributed as dist

    from .model import RNN
    from .torch import SigmoidRNN

    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    T, N, D = x.shape
    O = y.shape[2]
    tdt = torch.float64 if cfg.dtype == "float64" else torch.float32
    # the numpy RNN's initialisation from the seed, so every backend starts from the same weights
    init = RNN(D, cfg.hidden_size, O, cfg.hidden_activation, cfg.output_activation, np.dtype(cfg.dtype), seed=cfg.seed)
    model = SigmoidRNN.from_numpy(init, checkpoint=cfg.checkpoint, truncate=cfg.truncate)
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    params = list(model.parameters())
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    xs = torch.from_numpy(x).to(tdt)  # (T, N, D)
    ys = torch.from_numpy(y).to(tdt)  # (T, N, O)
    ms = None if mask is None else torch.from_numpy(mask)  # (T, N)
    bs = cfg.batch_size or N
    losses: list[float] = []
    for epoch in range(1, cfg.epochs + 1):
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(N) if bs < N else np.arange(N)
        for lo in range(0, N, bs):
            idx = perm[lo : lo + bs]  # this global batch
            n = int(mask[:, idx].sum()) if mask is not None else T * len(idx)
            if n == 0:
                continue  # nothing scored: no update on any rank
            mine = np.array_split(idx, world)[rank]  # this rank's share (may be empty)
            weight = 1.0
            if len(mine) == 0:  # still take part in the all-reduce, with a zero gradient
                mine, weight = idx[:1], 0.0
            mine_t = torch.from_numpy(np.ascontiguousarray(mine))
            y_pred = net(xs[:, mine_t])  # (T, b, O)
            r2 = 0.5 * ((y_pred - ys[:, mine_t]) ** 2).sum(-1)  # (T, b)
            if ms is not None:
                r2 = r2 * ms[:, mine_t]
            local = r2.sum() * weight
            loss = local * (world / n)  # DDP averages over ranks: the mean of these is dLoss
            opt.zero_grad(set_to_none=False)
            loss.backward()
            if cfg.clip is not None:
                _clip(params, cfg.clip)
            opt.step()
            total = local.detach().clone()
            if distributed:
                dist.all_reduce(total)
            losses.append(float(total) / n)
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    diff = 0.0
    if distributed:  # do the replicas agree?  (they should, exactly)
        ref = flat.clone()
        dist.broadcast(ref, 0)
        d = (flat - ref).abs().max().reshape(1)
        dist.all_reduce(d, op=dist.ReduceOp.MAX)
        diff = float(d)
    return {
        "params": {k: p.detach().cpu().numpy().copy() for k, p in model.named_parameters()},
        "losses": losses,
        "max_rank_diff": diff,
    }


def _clip(params, max_norm: float) -> None:
    """Scale every gradient by max_norm / ||g|| when ||g|| > max_norm (the formula of bptt.train)."""
    import torch

    norm = math.sqrt(sum(float(torch.sum(p.grad * p.grad)) for p in params))
    if norm > max_norm:
        for p in params:
            p.grad.mul_(max_norm / (norm + 1e-12))


# ---------------------------------------------------------------- launching
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _threads_per_rank(nproc: int) -> int:
    return max(1, (os.cpu_count() or 1) // nproc)


def _spawned(rank: int, world: int, port: int, x, y, mask, cfg: DDPConfig, result_dir: str) -> None:
    """Entry of each process started by ``train``: join the group, train, leave the result in result_dir."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(_threads_per_rank(world))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        out = run_rank(x, y, mask, cfg)
    finally:
        dist.destroy_process_group()
    arrays = {f"p.{k}": v for k, v in out["params"].items()}
    arrays["losses"] = np.asarray(out["losses"], dtype=np.float64)
    arrays["max_rank_diff"] = np.asarray(out["max_rank_diff"])
    np.savez(os.path.join(result_dir, f"rank{rank}.npz"), **arrays)


def train(x: Any, y: Any, mask: Any = None, cfg: DDPConfig | None = None, nproc: int = 2) -> DDPResult:
    """Train ``cfg``'s SigmoidRNN on (x (T, N, D), y (T, N, O), mask (T, N)) with ``nproc`` processes.

    nproc = 1 trains in this process without any process group (the single-process
    reference); nproc > 1 starts that many processes (torch.multiprocessing, spawn) on the
    gloo backend over 127.0.0.1 and wraps the model in DistributedDataParallel.
    """
    cfg = cfg or DDPConfig()
    cfg.validate()
    x, y, mask = check_data(x, y, mask)
    if isinstance(nproc, bool) or not isinstance(nproc, (int, np.integer)) or nproc < 1:
        raise BPTTError(f"nproc must be a positive number of processes, got {nproc!r}")
    t0 = time.perf_counter()
    if nproc == 1:
        out = run_rank(x, y, mask, cfg)
        return DDPResult(out["params"], [out["params"]], out["losses"], 0.0, time.perf_counter() - t0, 1)
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="bptt-ddp-") as tmp:
        mp.spawn(_spawned, args=(nproc, free_port(), x, y, mask, cfg, tmp), nprocs=nproc, join=True)
        ranks = []
        for r in range(nproc):
            with np.load(os.path.join(tmp, f"rank{r}.npz")) as z:
                ranks.append({k: z[k].copy() for k in z.files})
    rank_params = [{k: rk[f"p.{k}"] for k in PARAM_NAMES} for rk in ranks]
    return DDPResult(rank_params[0], rank_params, ranks[0]["losses"].tolist(), float(ranks[0]["max_rank_diff"]),
                     time.perf_counter() - t0, nproc)


# ---------------------------------------------------------------- command line
def _load_data(args: argparse.Namespace, seed: int):
    """(x, y, mask, info for model.npz) from --task (bptt's tasks) or --data (an .npz with x, y, optional mask)."""
    if (args.task is None) == (args.data is None):
        raise BPTTError("give exactly one of --task NAME (a bptt task) or --data FILE.npz (arrays x, y and optional mask)")
    if args.task is not None:
        from . import tasks

        opts = {k: v for k, v in (args.task_options or {}).items() if v is not None}
        d = tasks.load(args.task, seed=seed, **opts)
        info = {"task": d.name, "task_info": d.info, "scaling": d.scaling.to_json() if d.scaling else None}
        return d.train.x, d.train.y, d.train.mask, info
    p = Path(args.data)
    if not p.is_file():
        raise BPTTError(f"--data {p}: no such file; give an .npz with arrays x (T, N, D) and y (T, N, O)")
    try:
        with np.load(p) as z:
            if "x" not in z.files or "y" not in z.files:
                raise BPTTError(f"--data {p}: needs arrays named x and y, found {', '.join(z.files) or 'none'}")
            x, y = z["x"], z["y"]
            mask = z["mask"] if "mask" in z.files else None
    except (OSError, ValueError) as e:
        raise BPTTError(f"--data {p}: not a readable .npz ({str(e).splitlines()[0]})") from None
    return x, y, mask, {"task": None, "data": str(p)}


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default=None, help="a bptt task (binary-addition, sine, adding, sunspots, csv)")
    p.add_argument("--data", default=None, metavar="FILE.npz", help="or your own data: x (T, N, D), y (T, N, O), optional mask (T, N)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: model.npz, metrics.json (new or empty unless --force)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--nproc", type=int, default=None, help="processes to start on this machine (not under torchrun)")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--hidden-activation", default="sigmoid")
    p.add_argument("--output-activation", default="sigmoid")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--optimizer", default="adam", help="adam or sgd")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd)")
    p.add_argument("--clip", type=float, default=None, help="clip the global gradient norm")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=None, help="global batch (default: every training sequence)")
    p.add_argument("--truncate", type=int, default=None)
    p.add_argument("--checkpoint", default=None, help="'sqrt' or a segment length: sqrt(T) memory in the backward pass")
    p.add_argument("--seed", type=int, default=0)


def config_from_args(args: argparse.Namespace) -> DDPConfig:
    ck: Any = args.checkpoint
    if ck is not None and ck != "sqrt":
        try:
            ck = int(ck)
        except ValueError:
            raise BPTTError(f"--checkpoint must be 'sqrt' or a positive integer, got {ck!r}") from None
        if ck < 1:
            raise BPTTError(f"--checkpoint must be 'sqrt' or a positive integer, got {ck}")
    return DDPConfig(hidden_size=args.hidden, hidden_activation=args.hidden_activation,
                     output_activation=args.output_activation, dtype=args.dtype, optimizer=args.optimizer, lr=args.lr,
                     momentum=args.momentum, nesterov=args.nesterov, clip=args.clip, epochs=args.epochs, batch_size=args.batch_size,
                     truncate=args.truncate, checkpoint=ck, seed=args.seed)


def _under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def run_cli(args: argparse.Namespace) -> int:
    """Check everything, train (spawned or under torchrun), write --out on rank 0."""
    cfg = config_from_args(args)
    cfg.validate()
    out = check_out_dir(args.out, args.force)
    x, y, mask, info = _load_data(args, cfg.seed)
    x, y, mask = check_data(x, y, mask)
    t0 = time.perf_counter()
    if _under_torchrun():
        import torch
        import torch.distributed as dist

        world = int(os.environ["WORLD_SIZE"])
        if args.nproc not in (None, world):
            raise BPTTError(f"--nproc {args.nproc} under torchrun, which started {world} processes; leave --nproc out")
        torch.set_num_threads(_threads_per_rank(int(os.environ.get("LOCAL_WORLD_SIZE", world))))
        dist.init_process_group("gloo", init_method="env://")
        try:
            r = run_rank(x, y, mask, cfg)
            rank = dist.get_rank()
        finally:
            dist.destroy_process_group()
        if rank != 0:
            return 0
        res = DDPResult(r["params"], [r["params"]], r["losses"], r["max_rank_diff"], time.perf_counter() - t0, world)
    else:
        res = train(x, y, mask, cfg, nproc=args.nproc or 1)
    _write(out, res, cfg, info, x.shape[2], y.shape[2])
    print(f"bptt.ddp: {res.nproc} process(es), {len(res.losses)} updates in {res.seconds:.1f} s; "
          f"loss {res.losses[0]:.6g} -> {res.losses[-1]:.6g}; ranks agree to {res.max_rank_diff:.3g}; wrote {out}")
    return 0


def _write(out: Path, res: DDPResult, cfg: DDPConfig, info: dict[str, Any], D: int, O: int) -> None:
    from . import io as bio

    out.mkdir(parents=True, exist_ok=True)
    model = res.to_numpy(D, O, cfg)
    bio.save_model(out / "model.npz", model, {**info, "config": cfg.to_json(), "backend": "torch", "nproc": res.nproc})
    bio.atomic_write_json(out / "metrics.json", {
        "backend": "torch", "nproc": res.nproc, "config": cfg.to_json(), "losses": res.losses,
        "max_rank_diff": res.max_rank_diff, "seconds": res.seconds,
    })


# Settings of `bptt train` that this backend does not implement: given explicitly, they are an error;
# coming from a task's defaults, they are dropped with a note.
_TRAIN_UNSUPPORTED = {"chunk": "--chunk", "patience": "--patience", "checkpoint_every": "--checkpoint-every",
                      "min_lr": "--min-lr"}


def run_train_args(args: argparse.Namespace) -> int:
    """`bptt train --backend torch [--nproc N]`: the task and settings of `bptt train`, trained with DDP.

    Writes model.npz (readable by `bptt predict`) and metrics.json to --out.  The model is the
    one after the last epoch (no model selection on the validation split, no checkpoints/resume).
    """
    from . import tasks as T
    from .cli.train import train_config_from_args
    from .train import load_task

    if args.backend != "torch":
        raise BPTTError(f"--backend {args.backend!r} is not supported; choose numpy (default) or torch")
    if args.resume:
        raise BPTTError("--resume is not supported with --backend torch; re-run the training without it")
    nproc = 1 if args.nproc is None else args.nproc
    if nproc < 1:
        raise BPTTError(f"--nproc must be a positive number of processes, got {nproc}")
    for name, flag in _TRAIN_UNSUPPORTED.items():
        if getattr(args, name, None) is not None:
            raise BPTTError(f"{flag} is not supported with --backend torch; leave it out or use --backend numpy")
    if args.schedule not in (None, "constant"):
        raise BPTTError("--schedule cosine is not supported with --backend torch; leave it out or use --backend numpy")
    tc = train_config_from_args(args)
    dropped = [flag for name, flag in _TRAIN_UNSUPPORTED.items()
               if name != "checkpoint_every" and getattr(tc, name) not in (None, 0, 0.0)]
    cfg = DDPConfig(hidden_size=tc.hidden_size, hidden_activation=tc.hidden_activation,
                    output_activation=tc.output_activation, dtype=tc.dtype, optimizer=tc.optimizer, lr=tc.lr,
                    momentum=tc.momentum, nesterov=tc.nesterov, betas=tuple(tc.betas), eps=tc.eps, clip=tc.clip,
                    epochs=tc.epochs, batch_size=tc.batch_size, truncate=tc.truncate, seed=tc.seed)
    cfg.validate()
    out = check_out_dir(args.out, args.force)
    data = load_task(tc)
    if dropped:
        print(f"note: --backend torch trains on whole sequences with a constant learning rate; the task default(s) "
              f"{', '.join(dropped)} do not apply")
    res = train(data.train.x, data.train.y, data.train.mask, cfg, nproc=nproc)
    info = {"task": data.name, "task_info": data.info, "scaling": data.scaling.to_json() if data.scaling else None}
    _write(out, res, cfg, info, data.input_size, data.output_size)
    model = res.to_numpy(data.input_size, data.output_size, cfg)
    metrics = T.metrics(data, model)
    print(f"bptt train --backend torch: task={tc.task} hidden={cfg.hidden_size} {nproc} process(es), "
          f"{len(res.losses)} updates in {res.seconds:.1f} s; loss {res.losses[0]:.6g} -> {res.losses[-1]:.6g}; "
          f"ranks agree to {res.max_rank_diff:.3g}")
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            print(f"  test {k}: {v:.6g}")
    print(f"wrote model.npz, metrics.json in {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .cli._common import Parser

    p = Parser(prog="python -m bptt.ddp", description=__doc__.split("\n\n")[0])
    add_options(p)
    try:
        args = p.parse_args(argv)
        args.task_options = None
        return run_cli(args)
    except BPTTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
