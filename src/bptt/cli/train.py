"""`bptt train`: options (task defaults under the ones given), progress, the result table."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .. import ddp
from .. import io as bio
from ..io import json_safe
from .. import plots
from .. import tasks
from ..activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from ..hf import HFSettings
from ..optim import AdamSettings, SGDSettings
from ..losses import LOSSES
from ..optim import OPTIMIZERS, SCHEDULES
from ..train import BACKENDS, TrainConfig, check_training_size, config_for, load_task, run_config, train, write_outputs
from ..validation import DTYPES, BPTTError
from ._common import console, number


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 30
COMPILES = ("kernels",)


def add(sub) -> None:
    p = sub.add_parser("train", help="train the network on a task; writes model, metrics and plots to --out",
                       description="Train the seed's network on a task. Writes model.npz, metrics.json, config.json, "
                       "checkpoint.npz and the loss/predictions/gradflow plots (--plots) to --out (--ensemble K: each member's config "
                       "and checkpoints in --out/members/k/ instead of checkpoint.npz). Options left out take the task's defaults.")
    p.add_argument("--task", default=None, metavar=_choices(tasks.TASKS), help=_task_help())
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be new or empty unless --force or --resume)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out: replaces only the files "
                   f"an earlier bptt run wrote there (listed in {bio.MANIFEST}, unchanged since), never anyone else's")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint (its own settings; other options are ignored)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help=f"print the final test metrics (numbers; arrays stay in metrics.json), "
                   f"files and warnings as one JSON object, schema {JSON_SCHEMA!r} (docs/howto/training.md); no "
                   "progress, no table")
    p.add_argument("--plots", default="png", choices=plots.RUN_PLOTS,
                   help="format of loss/predictions/gradflow plots, or none (default png)")
    p.add_argument("--backend", default=None, metavar=_choices(BACKENDS), help=f"where gradients come from: {' or '.join(BACKENDS)} (default numpy: "
                   "this library's engine; torch: the bptt.torch layer, data-parallel with --nproc; see docs/howto/torch.md)")
    p.add_argument("--nproc", type=int, default=None, metavar="N", help="--backend torch: data-parallel processes on this "
                   "machine (gloo over 127.0.0.1; under torchrun, its process count); --batch-size is the global batch")
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=int, default=None, metavar="H", help=f"hidden units ({_per_task('hidden_size')})")
    g.add_argument("--hidden-activation", default=None, metavar=_choices(HIDDEN_ACTIVATIONS), help=f"one of {', '.join(HIDDEN_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--output-activation", default=None, metavar=_choices(OUTPUT_ACTIVATIONS), help=f"one of {', '.join(OUTPUT_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--loss", default=None, metavar=_choices(LOSSES), help="the loss table's (bptt.losses): "
                   + "; ".join(f"{n}: {r.formula}" + ("" if r.outputs is None else f" (with {' or '.join(r.outputs)} output)")
                               for n, r in LOSSES.items()) + " (default per task; squared_error, the seed's)")
    g.add_argument("--dtype", default=None, metavar=_choices(DTYPES), help="float64 (default) or float32")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default=None, metavar=_choices(OPTIMIZERS), help=f"one of {', '.join(OPTIMIZERS)} (default adam)")
    g.add_argument("--lr", type=float, default=None, help=f"learning rate ({_per_task('lr')})")
    _add_owner_flags(g, SGDSettings)  # --momentum, --nesterov: generated from optim.SGDSettings
    g.add_argument("--clip", default=None, metavar="NORM", help="clip the global gradient norm (default 1; 'none' to disable)")
    g.add_argument("--schedule", default=None, metavar=_choices(SCHEDULES), help=f"one of {', '.join(SCHEDULES)} (default constant)")
    g.add_argument("--min-lr", type=float, default=None, help="cosine schedule's final learning rate (default 0)")
    g.add_argument("--epochs", type=int, default=None, help=f"passes over the training set ({_per_task('epochs')})")
    g.add_argument("--batch-size", type=int, default=None, help=f"sequences per update ({_per_task('batch_size')})")
    g.add_argument("--chunk", type=int, default=None, metavar="K", help="truncated BPTT over streams: update every K steps, "
                   f"hidden state carried ({_per_task('chunk')})")
    g.add_argument("--truncate", type=int, default=None, metavar="K", help="each error backpropagates at most K steps (default: none, full BPTT)")
    g.add_argument("--grad-checkpoint", default=None, metavar="K", help="'sqrt' or K: keep every K-th hidden state in the "
                   "backward pass and recompute the rest (memory ~sqrt(T), the same gradient); not with --truncate (default: none, "
                   "every state kept)")
    g.add_argument("--patience", type=int, default=None, metavar="E", help="early stopping after E epochs without a better validation loss (default: none, all epochs run)")
    g.add_argument("--seed", type=int, default=None, help="one seed for data, initialisation and shuffling (default 0)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="E", help=f"checkpoint every E epochs ({_per_task('checkpoint_every')})")
    g.add_argument("--ensemble", default=None, metavar="K", help=f"train K networks (1..{bio.MAX_ENSEMBLE}, default 1) that "
                   "differ only in their seed, 10 × --seed + k for member k = 0..K-1 (random tasks: all on --seed's data), "
                   "and average their predictions; "
                   "one model.npz, each member's checkpoints in --out/members/k/ (--resume continues them)")
    g = p.add_argument_group("Hessian-free (--optimizer hf; docs/howto/hessian-free.md)")
    _add_owner_flags(g, HFSettings)  # one flag per setting of bptt.hf.HFSettings, its help beside the field
    _add_task_options(p)
    p.set_defaults(run=run)


# The settings owned by an optimizer (TrainConfig.sgd, .adam, .hf): their flags come from their fields'
# metadata (flag, help, flat keyword: the flag's dest), so a setting added there is a flag here.
OWNED = (SGDSettings, AdamSettings, HFSettings)


def _add_owner_flags(g, cls) -> None:
    for f in dataclasses.fields(cls):
        flag, dest, help = f.metadata["flag"], f.metadata["flat"], f.metadata["help"]
        if flag is None:
            continue
        if str(f.type) == "bool":
            g.add_argument(flag, dest=dest, action="store_true", default=None, help=help)
        elif f.metadata.get("all_is_none"):  # an integer, or 'all' (None in the settings)
            g.add_argument(flag, dest=dest, default=None, metavar="N", help=help)
        else:  # int or float, from the annotation ('int | None' -> int)
            is_int = str(f.type).startswith("int")
            g.add_argument(flag, dest=dest, type=int if is_int else float, default=None, metavar="N" if is_int else "X",
                           help=help)


def _owned_given(args: argparse.Namespace) -> dict[str, Any]:
    """The owned settings given on the command line, by flat keyword ('all' read as None, and still given)."""
    out: dict[str, Any] = {}
    for cls in OWNED:
        for f in dataclasses.fields(cls):
            if f.metadata["flag"] is None:
                continue
            value = getattr(args, f.metadata["flat"])
            if value is not None and f.metadata.get("all_is_none"):
                out[f.metadata["flat"]] = _int_or_all(value, f.metadata["flag"])
            elif value is not None:
                out[f.metadata["flat"]] = value
    return out


def _choices(names) -> str:
    """How argparse shows a value with fixed choices: {a,b,c}."""
    return "{" + ",".join(names) + "}"


def _task_help() -> str:
    """--task's help: required unless --resume, and every task of the registry with its description."""
    return "required (unless --resume); one of: " + "; ".join(f"{t.name}: {t.description}" for t in tasks.TASKS.values())


def _per_task(setting: str) -> str:
    """'default per task: binary-addition 8, sine 16, adding 30 (hf 200), ...': each record's default of a
    TrainConfig setting, and what --optimizer hf makes it where that differs."""
    def shown(t: tasks.Task) -> str:
        text = f"{t.name} {_shown(getattr(t.defaults, setting))}"
        return text + (f" (hf {_shown(t.defaults.hf[setting])})" if setting in t.defaults.hf else "")

    return "default per task: " + ", ".join(shown(t) for t in tasks.TASKS.values())


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def _option_dest(name: str) -> str:
    return f"task_option_{name}"


def _option_help(uses: list[tuple[tasks.Task, tasks.Option]]) -> str:
    """'sine: sequence length (default 100); adding: (default 50)': the tasks taking an option, with their defaults."""
    parts, last = [], None
    for task, opt in uses:
        default = "(required)" if opt.required else ("" if opt.default is None else f"(default {opt.default})")
        if opt.help == last:
            parts.append(" ".join(p for p in (task.name, default) if p))  # "adding (default 2000)"
        else:
            parts.append(f"{task.name}: " + " ".join(p for p in (opt.help, default) if p))
        last = opt.help
    return "; ".join(parts).replace("%", "%%")  # argparse %-formats help


def _add_task_options(p: argparse.ArgumentParser) -> None:
    """One argument per option name in the task registry; each applies to the tasks its help names."""
    g = p.add_argument_group("task options (from the task registry, bptt.tasks.TASKS)")
    for name, uses in tasks.options_by_name().items():
        opt = uses[0][1]
        g.add_argument(opt.flag, dest=_option_dest(name), type=opt.type, default=None, metavar=opt.metavar,
                       help=_option_help(uses))


JSON_SCHEMA = "bptt-train/1"  # the shape of `bptt train --json`; a change of shape gets a new number


def train_json(task: str, out: Any, seconds: float, metrics: dict[str, Any], paths: dict[str, Any],
               warnings: list[str]) -> dict[str, Any]:
    """`bptt train --json`: one object of one shape for every task (docs/howto/training.md, "--json").

    {"schema": "bptt-train/1", "task", "out", "seconds", "test": {name: number, text or null}, "in_metrics_json":
    [names of the test results that are arrays or tables, written whole under "test" in the run's metrics.json],
    "files": {name: path}, "warnings": [line]}"""
    scalars = {k: v for k, v in metrics.items() if v is None or isinstance(v, (bool, int, float, str))}
    return {"schema": JSON_SCHEMA, "task": task, "out": str(out), "seconds": seconds, "test": scalars,
            "in_metrics_json": sorted(k for k in metrics if k not in scalars),
            "files": {k: str(p) for k, p in paths.items()}, "warnings": warnings}


def train_config_from_args(args: argparse.Namespace):
    """All of `bptt train`'s options -> one TrainConfig (task defaults under the options given)."""
    if args.task is None:
        raise BPTTError("bptt train: --task is required (or --resume to continue a run); e.g. --task binary-addition")
    clip: Any = None
    if args.clip is not None:
        clip = None if str(args.clip).lower() == "none" else number(args.clip, "--clip")
    given = {
        "hidden_size": args.hidden, "hidden_activation": args.hidden_activation, "output_activation": args.output_activation,
        "loss": args.loss,
        "dtype": args.dtype, "optimizer": args.optimizer, "lr": args.lr,
        "schedule": args.schedule, "min_lr": args.min_lr, "epochs": args.epochs, "batch_size": args.batch_size,
        "chunk": args.chunk, "truncate": args.truncate, "patience": args.patience, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "grad_checkpoint": _grad_checkpoint(args.grad_checkpoint),
        "backend": args.backend, "nproc": _nproc(args.nproc),
    }
    given["ensemble"] = _ensemble(args.ensemble)
    settings = {k: v for k, v in given.items() if v is not None}
    settings.update(_owned_given(args))  # flat keywords: config_for nests them under their owners
    if args.clip is not None:
        settings["clip"] = clip
    given_options = {name: getattr(args, _option_dest(name), None) for name in tasks.options_by_name()}
    task_options = {k: v for k, v in given_options.items() if v is not None}  # each converted by its Option.type
    return config_for(args.task, task_options, **settings)


def _int_or_all(text: str, flag: str) -> int | None:
    """An "all" option: an integer, or 'all' (any case) for None (TrainConfig.validate checks the range)."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise BPTTError(f"{flag} must be a positive integer or 'all', got {text!r}") from None


def _ensemble(text: str | None) -> int | None:
    """--ensemble K: an integer (TrainConfig.validate checks 1..MAX_ENSEMBLE)."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise BPTTError(f"--ensemble must be an integer from 1 to {bio.MAX_ENSEMBLE} (networks averaged), got {text!r}; "
                        "give e.g. --ensemble 5") from None


def _grad_checkpoint(text: str | None) -> int | str | None:
    """--grad-checkpoint: None, 'sqrt' or a positive integer (TrainConfig.validate checks the range)."""
    if text is None or text == "sqrt":
        return text
    try:
        return int(text)
    except ValueError:
        raise BPTTError(f"--grad-checkpoint must be 'sqrt' or a positive integer, got {text!r}") from None


def _nproc(nproc: int | None) -> int | None:
    """--nproc; under torchrun, its process count (a different --nproc is refused)."""
    if not ddp.under_torchrun():
        return nproc
    world = ddp.torchrun_world()
    if nproc not in (None, world):
        raise BPTTError(f"--nproc {nproc} under torchrun, which started {world} processes; leave --nproc out")
    return world


def run(args: argparse.Namespace) -> int:
    if args.nproc is not None and args.backend in (None, "numpy") and not args.resume:
        raise BPTTError("--nproc needs --backend torch (data-parallel training runs on PyTorch)")
    cfg = None if args.resume else train_config_from_args(args)
    return run_cli(cfg, args.out, force=args.force, resume=args.resume, progress=not args.no_progress,
                   plot_format=args.plots, as_json=args.json)


def run_cli(cfg: TrainConfig | None, out: str | Path, force: bool = False, resume: bool = False, progress: bool = True,
            plot_format: str = "png", as_json: bool = False) -> int:
    """`bptt train`: check the folder, train with a progress bar, write model, metrics and plots.

    Every check (folder, settings, task data) happens before anything is written.
    """
    out = bio.check_out_path(out)  # never a symbolic link, / or a home folder
    if resume:
        if not out.is_dir():
            raise BPTTError(f"{out}: no such folder to resume; give the --out folder of the run to continue")
        cfg = run_config(out)  # the checkpoint's, or an ensemble's config.json
    assert cfg is not None
    cfg.validate()
    outputs = bio.run_outputs(cfg.ensemble, plot_format)  # every file this run writes: free, or written by bptt
    if not resume:
        bio.check_out_dir(out, force, can_resume=True, outputs=outputs)
    data = load_task(cfg)  # bad task input fails here, before the folder is touched
    check_training_size(cfg, data)  # and a network or batch too big for this machine
    if cfg.backend == "torch" and cfg.nproc > 1 and not ddp.under_torchrun():
        ddp.check_ranks(cfg.nproc)
    if not ddp.is_rank0():  # torchrun's other ranks: train, write and print nothing
        ddp.launch(cfg, out, resume=resume, data=data)
        return 0
    # this run alone writes here; --force removes the earlier runs' files that still hold what bptt wrote
    with bio.RunFolder(out, force=force, resume=resume, outputs=outputs):
        try:
            return _train_and_report(cfg, data, out, resume, progress and not as_json, plot_format, as_json)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: one line saying how to go on (the checkpoint is whole)
            if str(e):
                raise
            raise type(e)(f"continue from the last checkpoint with: bptt train --resume --out {out}") from None


def _train_and_report(cfg: TrainConfig, data, out: Path, resume: bool, progress: bool, plot_format: str,
                      as_json: bool = False) -> int:
    con = console()
    # every backend runs the one loop; backend torch goes through the launcher (processes, process group)
    run_training = ddp.launch if cfg.backend == "torch" else train

    batches = math.ceil(data.train.n / cfg.batch_size)
    procs = f" ×{cfg.nproc} processes" if cfg.nproc > 1 else ""
    K = cfg.ensemble
    if K > 1:
        procs += f" ensemble={K} (member k: seed {10 * cfg.seed}+k)"
    if not as_json:
        from rich.markup import escape

        con.print(f"[bold]bptt train[/bold] task={cfg.task} hidden={cfg.hidden_size} ({cfg.hidden_activation}) "
                  f"optimizer={cfg.optimizer} lr={cfg.lr} epochs={cfg.epochs} batches/epoch={batches} seed={cfg.seed} "
                  f"backend={cfg.backend}{procs} -> {escape(str(out))}" + ("  (resumed)" if resume else ""))
    live = progress and con.is_terminal
    every = max(1, cfg.epochs // 10)
    t0 = time.perf_counter()
    if live:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(TextColumn("{task.fields[member]}epoch {task.fields[epoch]}/" + str(cfg.epochs)), BarColumn(), MofNCompleteColumn(),
                       TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"), TimeElapsedColumn(),
                       TimeRemainingColumn(), console=con, transient=False)
        tid = bar.add_task("train", total=K * cfg.epochs * batches, epoch=0, loss="-", val="-", member="")

        def report(info: dict[str, Any]) -> None:
            before = info.get("member", 0) * cfg.epochs * batches  # an ensemble's earlier members
            if info.get("done"):
                bar.update(tid, val=f"{info['val_loss']:.5g}")
            else:
                bar.update(tid, completed=before + (info["epoch"] - 1) * batches + info["batch"],
                           epoch=info["epoch"], member=_member(info), loss=f"{info['loss']:.5g}")

        with bar:
            result = run_training(cfg, out, resume=resume, progress=report, data=data)
    else:

        def report(info: dict[str, Any]) -> None:
            if progress and info.get("done") and (info["epoch"] % every == 0 or info["epoch"] == cfg.epochs):
                print(f"{_member(info)}epoch {info['epoch']}/{cfg.epochs}  train loss {info['train_loss']:.5g}  val loss {info['val_loss']:.5g}",
                      flush=True)

        result = run_training(cfg, out, resume=resume, progress=report, data=data)
    paths = write_outputs(result, out, plot_format)
    elapsed = time.perf_counter() - t0
    warnings = result_warnings(result.metrics)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if as_json:
        print(json.dumps(json_safe(train_json(cfg.task, out, elapsed, result.metrics, paths, warnings))))
        return 0
    from rich.table import Table

    if K > 1:
        kept = ", ".join(str(m["best_epoch"]) for m in result.metrics["members"])
        con.print(f"{cfg.task}: test set (mean prediction of an ensemble of {K} networks, seeds {10 * cfg.seed}.."
                  f"{10 * cfg.seed + K - 1}; each member's model of its lowest validation loss, epochs {kept}; "
                  f"{elapsed:.1f} s)")
    else:
        con.print(f"{cfg.task}: test set (model of epoch {result.metrics['best_epoch']}, lowest validation loss; "
                  f"{result.metrics['epochs_run']} epochs, {elapsed:.1f} s)")
    t = Table()
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in result.metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("best_epoch", "epochs_run"):
            t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    con.print(t)
    members = f", members/0..{K - 1}/ (checkpoints)" if K > 1 else ""
    con.print("wrote " + ", ".join(str(p.name) for p in paths.values()) + members + f" in {out}", markup=False)
    return 0


def _member(info: dict[str, Any]) -> str:
    """'member k/K  ' in an ensemble's progress reports; '' in a single network's."""
    return f"member {info['member']}/{info['members']}  " if "members" in info else ""


def result_warnings(metrics: dict[str, Any]) -> list[str]:
    """What a user should know about a result: a series model that loses to its simplest baselines."""
    out = []
    mse, persistence = metrics.get("test_mse"), metrics.get("persistence_mse")
    if isinstance(mse, float) and isinstance(persistence, float) and mse > persistence:
        out.append(f"the RNN's test MSE ({mse:.4g}) is worse than persistence ({persistence:.4g}, next value = "
                   "this value): the model has not learned more than the last value tells; try more epochs, "
                   "another --lr or --window, or the series may be close to a random walk")
    return out
