"""``foleygen rate``: listening tests (MOS, A/B) with a database; see docs/rate.md."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "listening tests: create a study, serve the rating page, export answers, write the report"

_ACTIONS = ("create", "serve", "raters", "export", "report", "demo")


def _common(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the action (`rate create -q`) they set the flag; absent, they leave
    # whatever `foleygen rate -q create` set.
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="less chatter")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="tracebacks of unexpected errors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``foleygen rate`` and its actions."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="build a study from videos and each system's audio (paired by file stem)")
    _common(p)
    p.add_argument("study", metavar="STUDY", help="new folder for the study (database + muxed clips)")
    p.add_argument("--config", metavar="YAML", help="study description (docs/rate.md); flags below are then ignored")
    p.add_argument("--videos", metavar="DIR", help="folder of the test videos")
    p.add_argument("--system", action="append", default=[], metavar="NAME=DIR", help="a system's audio (repeat)")
    p.add_argument("--reference", metavar="NAME=DIR", help="hidden reference audio; NAME=videos: the videos' own sound")
    p.add_argument("--anchor", action="append", default=[], metavar="KIND",
                   help="known-bad anchor: shuffled or delayed:SECONDS, optionally @SOURCE (repeat)")  # fmt: skip
    p.add_argument("--question", action="append", default=[], metavar="KEY=TEXT",
                   help="a MOS question (repeat; given, they replace quality/relevance/sync)")  # fmt: skip
    p.add_argument("--no-mos", action="store_true", help="no MOS trials (A/B only)")
    p.add_argument("--ab", action="append", default=[], metavar="A,B", help="A/B preference between two systems")
    p.add_argument("--ab-all", action="store_true", help="A/B between every pair of systems")
    p.add_argument("--raters", default="0", metavar="N|NAMES", help="rater count or comma-separated names")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffled anchor and the trial orders")
    p.add_argument("--title", default="Listening test", help="shown on the rating page")
    p.add_argument("--min-pass", type=float, default=0.75, help="share of attention checks a kept rater passes")

    p = sub.add_parser("serve", help="serve the rating page and the admin page")
    _common(p)
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1; 0.0.0.0 for the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")

    p = sub.add_parser("raters", help="list the personal links, or add raters (--add NAME ...)")
    _common(p)
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--add", nargs="+", default=[], metavar="NAME", help="new raters (each gets a balanced order)")
    p.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the study is served")

    p = sub.add_parser("export", help="every answer as answers.csv and answers.json")
    _common(p)
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--out", metavar="DIR", help="output folder (default STUDY/export)")

    p = sub.add_parser("report", help="means with 95%% CIs, Holm-corrected tests, PNG plot, markdown/LaTeX/JSON")
    _common(p)
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--out", metavar="DIR", help="output folder (default STUDY/report)")
    p.add_argument("--keep-all", action="store_true", help="keep raters who failed the attention checks")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm (default 0.05)")

    p = sub.add_parser("demo", help="a ready study over SynthFoley test clips: shipped model, ablations, shuffled")
    _common(p)
    p.add_argument("study", metavar="STUDY", help="new folder for the study")
    p.add_argument("--clips", type=int, default=3, help="SynthFoley test clips (at least 2, default 3)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per clip (default 2)")
    p.add_argument("--ablation", default="runs/ablation", help="where scripts/run_ablation.py put its models")
    p.add_argument("--raters", type=int, default=2, help="raters to create (default 2)")
    p.add_argument("--serve", action="store_true", help="serve it right away")
    p.add_argument("--host", default="127.0.0.1", help="with --serve: address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="with --serve: TCP port (default 8000)")


def _name_dir(text: str, flag: str) -> tuple[str, str]:
    from foleygen.errors import ConfigError

    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise ConfigError(f"{flag} {text!r}: expected NAME=DIR")
    return name, folder


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 -- StudyConfig, imported lazily
    """The :class:`~foleygen.rate.study.StudyConfig` described by ``create``'s flags."""
    from itertools import combinations

    from foleygen.errors import ConfigError
    from foleygen.rate.study import DEFAULT_QUESTIONS, StudyConfig, SystemSpec, parse_anchor, raters_arg

    if args.config:
        from foleygen.rate.study import config_from_yaml

        return config_from_yaml(args.config)
    if not args.videos or not args.system:
        raise ConfigError("give --videos DIR and at least one --system NAME=DIR (or --config study.yaml)")
    systems = [SystemSpec(n, "system", Path(d)) for n, d in (_name_dir(s, "--system") for s in args.system)]
    if args.reference:
        name, folder = _name_dir(args.reference, "--reference")
        own = folder == "videos"
        systems.append(SystemSpec(name, "reference", None if own else Path(folder), own_audio=own))
    default_source = systems[-1].name if args.reference else systems[0].name
    systems += [parse_anchor(a, default_source) for a in args.anchor]
    questions = list(DEFAULT_QUESTIONS)
    if args.question:
        questions = [_name_dir(q, "--question") for q in args.question]
    pairs = [tuple(p.split(",", 1)) for p in args.ab]
    if args.ab_all:
        pairs = list(combinations([s.name for s in systems if s.role == "system"], 2))
    if any(len(p) != 2 for p in pairs):
        raise ConfigError("--ab expects A,B")
    return StudyConfig(
        videos=Path(args.videos), systems=systems, questions=questions, mos=not args.no_mos, ab_pairs=pairs,
        raters=raters_arg(args.raters), seed=args.seed, title=args.title, min_pass=args.min_pass,
    )  # fmt: skip


def _print_links(study: Path, base_url: str) -> None:
    from foleygen.rate.store import DB_NAME, Store
    from foleygen.rate.study import links

    for name, url in links(Store(study / DB_NAME), base_url):
        print(f"{name}: {url}")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; exit 1 when some input was skipped (each said on stderr)."""
    import sys

    study = Path(args.study)
    say = (lambda _: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if args.action == "create":
        from foleygen.rate.study import create_study

        skipped = []

        def log(line: str) -> None:
            if line.startswith("skipped"):
                skipped.append(line)
                print(f"foleygen rate create: error: {line}", file=sys.stderr, flush=True)
            else:
                say(line)

        create_study(study, config_from_args(args), log=log)
        print(f"study written to {study}; serve it with: foleygen rate serve {study}")
        _print_links(study, "http://127.0.0.1:8000")
        return 1 if skipped else 0
    if args.action == "serve":
        from foleygen.rate.server import serve

        serve(study, args.host, args.port, quiet=args.quiet)
        return 0
    if args.action == "raters":
        from foleygen.rate.store import DB_NAME, Store
        from foleygen.rate.study import add_rater

        store = Store(study / DB_NAME)
        for name in args.add:
            add_rater(store, name)
        _print_links(study, args.base_url)
        return 0
    if args.action == "export":
        from foleygen.rate.report import export

        for path in export(study, args.out):
            print(path)
        return 0
    if args.action == "report":
        from foleygen.rate.report import write_report

        out = write_report(study, args.out, keep_all=args.keep_all, alpha=args.alpha)
        print((out / "report.md").read_text(), end="")
        say(f"report written to {out} (report.md, report.tex, report.json, report.png)")
        return 0
    if args.action == "demo":
        from foleygen.rate.demo import build_demo

        names = build_demo(study, args.clips, args.duration, args.ablation, args.raters, log=say)
        print(f"demo study comparing {', '.join(names)} (+ hidden reference, shuffled anchor) in {study}")
        if args.serve:
            from foleygen.rate.server import serve

            serve(study, args.host, args.port, quiet=args.quiet)
        else:
            print(f"serve it with: foleygen rate serve {study}")
            _print_links(study, "http://127.0.0.1:8000")
        return 0
    raise AssertionError(f"unknown action {args.action}")  # argparse's choices make this unreachable
