"""`bptt check FILE`: hand-computed BPTT numbers checked at their written precision."""

from __future__ import annotations

import argparse


def add(sub) -> None:
    p = sub.add_parser("check", help="check hand-computed BPTT numbers (a TOML or JSON claims file)",
                       description="Check each claimed number (h_t, y'_t, dE_i/dθ, dLoss/dθ, ...) at the precision it "
                                   "is written with. Without targets in the file, infer the targets that best explain "
                                   "the claims and say which claims no targets can explain. Exit status: 0 all hold, "
                                   "1 some claim is wrong, 2 the file is unusable. See examples/seed_claims.toml.")
    p.add_argument("file", metavar="FILE", help="claims file, .toml or .json")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import check

    report = check.check(check.load(args.file))
    check.print_report(report)
    return 0 if report.all_hold else 1
