"""`bptt explain`: the chain-rule derivation as a Markdown, LaTeX, text or HTML document."""

from __future__ import annotations

import argparse
import sys

from ..html import LIVE_MAX_T
from ..validation import BPTTError, check_choice, check_int
from ._common import add_model_options, model_from_args, number, numbers, write_out
from ._common import stdout


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 60
COMPILES = ()


def add(sub) -> None:
    p = sub.add_parser("explain", help="write the chain-rule derivation of the five gradients as a document",
                       description="Write the seed's derivation for this model and sequence: the chain-rule formulas, "
                                   "the same with the numbers in, the building blocks and the five gradients. "
                                   "Without --y the targets stay symbols (as in the seed) and every gradient is affine in them.")
    add_model_options(p)
    p.add_argument("--x", default="1,0", metavar="X1,X2,...", help="input sequence (default 1,0: the seed's)")
    p.add_argument("--y", default=None, metavar="Y1,Y2,...", help="targets (default: left as symbols y_1, y_2, ...)")
    p.add_argument("--format", default="md", metavar="md|tex|text|html",
                   help="md: Markdown with LaTeX math (default); tex: a complete LaTeX document; text: plain text; "
                        "html: one self-contained live page (math typeset offline by the bundled KaTeX): controls for "
                        "every parameter, input, target, activation, loss and truncation recompute every value in "
                        "the page; the state is in the link (#w_h=0.5&x=1,0&...)")
    p.add_argument("--expand", default="3", metavar="T",
                   help="write every factor out, as the seed does, up to this many steps (default 3, at most 8: "
                        "written out, the document grows as T^3; at 8 steps it is 77 kB of Markdown, a 0.8 MB page "
                        "that typesets in about 3 s); longer sequences name the repeated factors once")
    p.add_argument("--out", default=None, metavar="FILE", help="write the document to FILE instead of standard output")
    p.add_argument("--force", action="store_true", help="with --out: overwrite FILE if it is an existing regular "
                   "file (never a link, FIFO or device)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import derive

    fmt = check_choice("--format", args.format, derive.FORMATS)
    m = model_from_args(args)
    if args.reduction not in ("mean", "sum"):
        raise BPTTError(f"--reduction {args.reduction!r} is not supported; choose mean or sum")
    x = numbers(args.x, "--x")
    y = None if args.y is None else numbers(args.y, "--y")
    if y is not None and len(y) != len(x):
        raise BPTTError(f"--x has {len(x)} steps but --y has {len(y)}; give one target per input step")
    expand = number(args.expand, "--expand")
    expand = check_int("--expand", int(expand) if expand == int(expand) else args.expand, 0, derive.EXPAND_MAX,
                       what=derive.EXPAND_WHAT)
    if len(x) > derive.MAX_T:
        raise BPTTError(f"--x has {len(x)} steps; bptt explain writes documents up to {derive.MAX_T} steps")
    params = {k: float(v.ravel()[0]) for k, v in m.params().items()}
    h0 = number(args.h0, "--h0")
    kw = dict(h0=h0, y=y, hidden_activation=m.hidden_activation, output_activation=m.output_activation,
              reduction=args.reduction, loss=m.loss_name)
    doc = derive.explain(params, x, fmt=fmt, expand=expand, **kw)  # html: live up to html.LIVE_MAX_T steps
    if fmt == "html" and len(x) > LIVE_MAX_T:
        print(f"note: the page is static: its live controls stop at T = {LIVE_MAX_T} steps", file=sys.stderr)
    if args.out is None:
        stdout().write(doc)  # an ASCII terminal gets 'theta' for θ
    else:
        write_out(args.out, doc, args.force)
        print(f"wrote {args.out} ({fmt}, T = {len(x)})", file=sys.stderr)
    return 0
