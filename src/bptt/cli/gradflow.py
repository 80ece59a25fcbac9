"""`bptt gradflow`: the gradient-flow heat maps and their decay summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .. import io as bio
from .. import tasks
from ..gradflow import DECAY_LAGS, MAX_MAP_STEPS, SAMPLINGS, choose_steps, describe_sequence, flow_map_pair, gradflow_sequence
from ..model import RNN
from ..train import TrainConfig, load_task
from ..validation import MAX_SIZE, BPTTError, check_int, check_memory, check_network_size, check_number
from ._common import check_out_file, steps


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 50
COMPILES = ()


def add(sub) -> None:
    p = sub.add_parser("gradflow", help="heat map of ||dE_t/dh_k|| / ||dE_t/dh_t|| over (t, k), sigmoid vs tanh side by side",
                       description="Gradient flow: how the error E_t's signal decays back through the hidden states h_k. "
                       "By default the normalised map R[t, k] = ||dE_t/dh_k|| / ||dE_t/dh_t|| (the decay alone, "
                       "without the size of the error at t); --raw draws ||dE_t/dh_k||. "
                       "With --model, for a trained model on one of its task's test sequences (and the same weights "
                       "with the other hidden activation); without, for fresh random networks with sigmoid and tanh "
                       "hidden units and identical weights. A sequence longer than --max-steps is shown over its last "
                       "--max-steps steps (or steps spread evenly with --sample even), so any length fits in memory.")
    p.add_argument("--out", required=True, metavar="FILE", help="the image to write: .png, .svg or .pdf, "
                   "the format its ending names (refuses an existing file unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it is an existing regular file "
                   "(never a link, FIFO or device)")
    p.add_argument("--model", default=None, metavar="DIR", help="a model written by `bptt train`")
    p.add_argument("--index", type=int, default=0, help="with --model: which test sequence (default 0)")
    p.add_argument("--x", default=None, metavar="V1,V2,...", help="with --model: your own input sequence instead "
                   "(a:b for several inputs per step; series models: values in the data's units, the targets are the next values)")
    p.add_argument("--y", default=None, metavar="Y1,Y2,...", help="with --model --x: targets, one per step (not needed for series models)")
    p.add_argument("--hidden", type=int, default=16, help="without --model: hidden units (default 16)")
    p.add_argument("--length", type=int, default=40, help="without --model: sequence length (default 40)")
    p.add_argument("--init-scale", type=float, default=1.0, help="without --model: multiply the initial weights (default 1)")
    p.add_argument("--seed", type=int, default=0, help="without --model: seed of weights and data (default 0)")
    p.add_argument("--raw", action="store_true", help="draw ||dE_t/dh_k|| itself, not divided by ||dE_t/dh_t||")
    p.add_argument("--max-steps", type=int, default=MAX_MAP_STEPS,
                   help=f"at most this many rows and columns in the map (default {MAX_MAP_STEPS})")
    p.add_argument("--sample", choices=SAMPLINGS, default="last",
                   help="a longer sequence's map shows its last --max-steps steps (last, default) or steps spread evenly over it (even)")
    p.add_argument("--json", action="store_true", help="print the decay summary as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return gradflow_cli(args.out, force=args.force, model=args.model, index=args.index, hidden=args.hidden,
                        length=args.length, init_scale=args.init_scale, seed=args.seed, as_json=args.json,
                        x=args.x, y=args.y, raw=args.raw, max_steps=args.max_steps, sample=args.sample)


def gradflow_cli(out: str | Path, force: bool = False, model: str | None = None, index: int = 0, hidden: int = 16,
                 length: int = 40, init_scale: float = 1.0, seed: int = 0, as_json: bool = False,
                 x: str | None = None, y: str | None = None, raw: bool = False, max_steps: int = MAX_MAP_STEPS,
                 sample: str = "last") -> int:
    """`bptt gradflow`: the gradient-flow heat maps, sigmoid and tanh side by side, and a decay summary.

    Normalised R[t, k] = ‖∂E_t/∂h_k‖ / ‖∂E_t/∂h_t‖ unless ``raw``; at most ``max_steps`` rows and
    columns (``sample``: the last steps or steps spread evenly), so memory is bounded for any T.
    With ``model``: one test sequence of its task (``index``) or the user's ``x`` (and ``y``; for a
    series model the inputs are x_1..x_{T-1} and the targets x_2..x_T, in the data's units).
    The image's format is its ending's: png, svg or pdf.
    """
    from .. import plots

    out = Path(out)
    plots.plot_format(out)
    check_out_file(out, force)  # a new file, or with --force an existing regular file: never a link, FIFO or device
    check_int("--max-steps", max_steps, 1)
    if (x is not None or y is not None) and model is None:
        raise BPTTError("--x/--y need --model (without it, gradflow draws random networks on random data)")
    if model is not None and x is not None:
        net, xs, ys, title = _user_sequence(model, x, y)
    elif model is not None:
        net, xs, ys, title = _test_sequence(model, index)
    else:
        net, xs, ys, title = _random_network(hidden, length, init_scale, seed)
    members = getattr(net, "members", None)
    if members is not None:  # an ensemble: the gradient flow of one network, member 0
        net = members[0]
        note = f"ensemble of {len(members)} networks: the gradient flow of member 0"
        title = f"{note}; {title}"
        print(note, file=sys.stderr if as_json else sys.stdout)
    chosen = choose_steps(len(xs), max_steps, sample)
    check_flow_work(net.hidden_size, net.output_size, len(xs), len(chosen), sample)
    maps = flow_map_pair(net, xs, ys, normalise=not raw, steps=chosen)
    if model is None:
        maps = {k.replace(" (as trained)", " (random init)"): v for k, v in maps.items()}
    plots.gradient_flow_maps(maps, out, title=title)
    _report(maps, out, as_json, {} if members is None else {"ensemble": len(members), "member": 0})
    return 0


def _report(maps: dict, out: Path, as_json: bool, ensemble: dict | None = None) -> None:
    """The decay summary (median over the map's rows t of R[t, t - lag]) and which steps the map shows."""
    first = next(iter(maps.values()))
    summary = {label: fm.decay for label, fm in maps.items()}
    if as_json:
        steps = {"length": first.length, "shown": len(first.steps), "first": int(first.steps[0]) + 1,
                 "last": int(first.steps[-1]) + 1, "stride": first.stride}
        print(json.dumps({"out": str(out), "decay": summary, "normalised": first.normalised, "steps": steps,
                          **(ensemble or {})}))
        return
    print(f"map: {first.describe()}; " + ("||dE_t/dh_k|| / ||dE_t/dh_t||" if first.normalised else "||dE_t/dh_k|| (raw)"))
    print("median over t of ||dE_t/dh_(t-lag)|| / ||dE_t/dh_t||:")
    for label, d in summary.items():
        print(f"  {label:28s} " + "  ".join(f"lag {k}: {v:.3g}" for k, v in d.items()))
    print(f"wrote {out}")


def _user_sequence(model: str, x: str, y: str | None):
    """(model, x (T, D), y (T, O), title) for the user's own sequence, in the model's [0, 1] units."""
    m, info = bio.load_model(model)
    xv = steps(x, m.input_size)  # (T, D)
    scaling = tasks.Scaling(**info["scaling"]) if info.get("scaling") else None
    if y is None:
        if scaling is None or m.input_size != 1:
            raise BPTTError("give --y targets, one per step of --x (only series models take the next values as targets)")
        if len(xv) < 2:
            raise BPTTError("--x needs at least 2 values: the targets are the next values")
        u = scaling.to_unit(xv)
        xs, ys = u[:-1], u[1:]  # (T-1, 1): predict each next value
    else:
        yv = steps(y, m.output_size)  # (T, O)
        if len(yv) != len(xv):
            raise BPTTError(f"--x has {len(xv)} steps but --y has {len(yv)}; give one target per step")
        xs = scaling.to_unit(xv) if scaling else xv
        ys = scaling.to_unit(yv) if scaling else yv
    return m, xs, ys, f"{info.get('task', 'model')}, your sequence ({len(xs)} steps)"


def _test_sequence(model: str, index: int):
    """(model, x, y, title) for test sequence ``index`` of the task the model was trained on."""
    m, info = bio.load_model(model)
    if "config" not in info:
        raise BPTTError(f"{model}: the model file does not say which task it was trained on; "
                        "gradflow --model needs a `bptt train` model")
    cfg = TrainConfig.from_json(info["config"])
    data = load_task(cfg)
    xs, ys = gradflow_sequence(data, index)
    return m, xs, ys, f"{cfg.task}, test sequence {index} ({describe_sequence(data, index)})"


# flow_map_pair (bptt.gradflow) for the two hidden activations: per map a few (n, n) float arrays (the log flow, the
# ratios, a mask) and the forward pass's (T, H + O) states; its sweep does S n H^2 multiply-adds per map.
MAP_COPIES = 8
STATE_COPIES = 8
MAX_SWEEP_WORK = 2e11  # multiply-adds for the two maps: a few minutes on one core; more is refused, not started


def check_flow_work(hidden: int, outputs: int, length: int, shown: int, sample: str) -> None:
    """Memory and work of the two maps, checked before they are computed: one line naming the option to lower."""
    check_memory(f"gradient-flow maps of {shown} x {shown} steps over a {length}-step sequence",
                 (MAP_COPIES * shown * shown + STATE_COPIES * length * (hidden + outputs)) * 8,
                 "give a smaller --max-steps (or a shorter sequence)")
    swept = length if sample == "even" else min(length, shown + max(DECAY_LAGS))
    work = 2 * swept * shown * hidden * hidden
    if work > MAX_SWEEP_WORK:
        raise BPTTError(f"gradient-flow maps of {shown} x {shown} steps with {hidden} hidden units need about "
                        f"{work:.2g} multiply-adds (the limit is {MAX_SWEEP_WORK:.0e}: minutes, not hours); give a "
                        f"smaller --max-steps{', --sample last' if sample == 'even' else ''} or fewer hidden units")


def _random_network(hidden: int, length: int, init_scale: float, seed: int):
    """(a fresh sigmoid network with its weights scaled, random x and y of ``length`` steps, title)."""
    check_int("--hidden", hidden, 1, MAX_SIZE)
    check_int("--length", length, 2)
    check_int("--seed", seed, 0)
    check_number("--init-scale", init_scale, 0, low_open=True)
    check_network_size(1, hidden, 1, copies=4, what="--hidden: the network")
    check_memory(f"a random sequence of {length} steps with {hidden} hidden units",
                 STATE_COPIES * length * (hidden + 1) * 8, "give a shorter --length or fewer --hidden units")
    base = RNN(1, hidden, 1, "sigmoid", "sigmoid", seed=seed)
    base.set_params(**{k: v * init_scale for k, v in base.params().items()})
    rng = np.random.default_rng([seed, 7])
    xs = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
    ys = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
    return base, xs, ys, f"random network, H={hidden}, init ×{init_scale:g}, seed {seed}, {length} steps"

