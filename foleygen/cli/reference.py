"""The CLI reference (``docs/cli.md``), generated from the argument parser so it never drifts.

    python -m foleygen.cli.reference > docs/cli.md

``tests/test_cli_reference.py`` fails when the committed file differs from what this produces.
"""

from __future__ import annotations

import argparse
import os

from foleygen.cli import build_parser


def _help(parser: argparse.ArgumentParser) -> str:
    # A fixed width makes the output the same on every terminal.
    os.environ["COLUMNS"] = "100"
    return parser.format_help().rstrip()


def _sections(parser: argparse.ArgumentParser, name: str, depth: int) -> list[str]:
    """One section per sub-command of ``parser``, each followed by its own sub-commands' (one level deeper)."""
    lines: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for sub_name, subparser in action.choices.items():
            full = f"{name} {sub_name}"
            lines += ["", f"{'#' * depth} {full}", "", "```text", _help(subparser), "```"]
            lines += _sections(subparser, full, min(depth + 1, 6))
    return lines


def render() -> str:
    """Markdown: the top-level help, then one section per subcommand, nested ones (``rate create``) included."""
    parser = build_parser()
    lines = [
        "# CLI reference",
        "",
        "Generated from the argument parser by `python -m foleygen.cli.reference > docs/cli.md`; do not edit.",
        "",
        "```text",
        _help(parser),
        "```",
    ]
    lines += _sections(parser, "foleygen", 2)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
