"""``styleforge graph``: edits of exported ONNX graphs (``rewrite-squared-difference``)."""

from __future__ import annotations

import argparse
from typing import Any

from styleforge.cli.common import HelpFormatter, add_command, add_json_option, print_json

DESCRIPTION = """\
Edit an exported ONNX graph. rewrite-squared-difference replaces every (X - Y)^2,
(X - Y)*(X - Y) and Pow(Sub(X, Y), c), and every InstanceNormalization (written out with
its variance through the operator), by styleforge's PowerDifference node (the course's
section 4.4 exercise on an existing model). The result runs on ONNX Runtime with
styleforge's kernel and gives the original's outputs.
"""


def register(subparsers: Any) -> None:
    """Add the ``graph`` command and its actions."""
    parser = add_command(subparsers, "graph", "edit exported ONNX graphs", DESCRIPTION)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rewrite = actions.add_parser("rewrite-squared-difference", formatter_class=HelpFormatter,
                                 help="replace squared differences and instance norms by PowerDifference nodes")
    rewrite.add_argument("input", metavar="IN.onnx", help="an ONNX file (e.g. from 'styleforge export')")
    rewrite.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the rewritten file")
    add_json_option(rewrite)
    rewrite.set_defaults(handler=run_rewrite)


def run_rewrite(args: argparse.Namespace) -> int:
    """Rewrite and print how many nodes were replaced (or JSON)."""
    from dataclasses import asdict

    from styleforge.deploy.graph_rewrite import rewrite_file

    report = rewrite_file(args.input, args.output)
    if args.json:
        print_json({"output": args.output, "replaced": report.total, **asdict(report)})
        return 0
    print(f"wrote {args.output}: replaced {report.total} pattern(s) by PowerDifference: {report.instance_norms} instance "
          f"norm(s), {report.pow_sub} Pow(Sub(X, Y), c), {report.mul_sub} (X - Y)*(X - Y)")
    return 0
