"""``foleygen synth``: write a SynthFoley split to disk (NNNNN.mp4 + NNNNN.json per clip), resumably."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "generate SynthFoley clips (procedural videos with exact sound events) into a folder"

MANIFEST = "synthfoley.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``foleygen synth``."""
    parser.add_argument("out_dir", metavar="OUTDIR", help="folder for NNNNN.mp4 + NNNNN.json")
    parser.add_argument(
        "--split",
        default="train",
        choices=["train", "val", "test"],
        help="split name; it is part of every clip's random seed, so splits never overlap",
    )
    parser.add_argument("--num", type=int, required=True, help="number of clips")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--start-index", type=int, default=0, help="index of the first clip (default 0)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per clip (default 4)")
    parser.add_argument("--fps", type=float, default=25.0, help="video frames per second (default 25)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="audio sample rate (default 16000)")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels (default 128)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")


def _make_one(job: tuple[str, int, int, Any, str]) -> int:
    from foleygen.data.synthfoley import generate_clip, write_clip

    split, seed, index, config, out_dir = job
    write_clip(generate_clip(split, seed, index, config), out_dir, f"{index:05d}")
    return index


def _check_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """A folder holds one split/seed/config: refuse to mix, so resuming never produces a hybrid."""
    import json

    from foleygen.atomic import atomic_write_text
    from foleygen.errors import DataError

    path = out_dir / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise DataError("not valid JSON; delete it to start over", path) from None
        diff = sorted(k for k in manifest if old.get(k) != manifest[k])
        if diff:
            raise DataError(
                f"folder holds SynthFoley clips made with other settings ({', '.join(diff)}); use another OUTDIR", path
            )
        return
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    """Generate the missing clips of ``--start-index .. --start-index + --num - 1``; returns 0."""
    import time
    from concurrent.futures import ProcessPoolExecutor

    from foleygen.config import to_dict
    from foleygen.data.synthfoley import GENERATOR_VERSION, SynthFoleyConfig, clip_is_complete
    from foleygen.errors import ConfigError
    from foleygen.utils import progress

    if args.num < 0 or args.start_index < 0 or args.workers < 1:
        raise ConfigError("--num and --start-index must be >= 0 and --workers >= 1")
    config = SynthFoleyConfig(duration=args.duration, fps=args.fps, sample_rate=args.sample_rate, size=args.size)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(
        out_dir,
        {"split": args.split, "seed": args.seed, "generator_version": GENERATOR_VERSION, "config": to_dict(config)},
    )
    # leftovers of an interrupted run (temporary names are never valid clips)
    for stale in list(out_dir.glob(".*.tmp.mp4")) + list(out_dir.glob(".*.json.*.tmp")):
        stale.unlink(missing_ok=True)
    indices = range(args.start_index, args.start_index + args.num)
    todo = [
        i
        for i in indices
        if not clip_is_complete(out_dir, f"{i:05d}", split=args.split, seed=args.seed, index=i, config=config)
    ]
    skipped = len(indices) - len(todo)
    jobs = [(args.split, args.seed, i, config, str(out_dir)) for i in todo]
    start = time.perf_counter()
    desc = f"synth {args.split}"
    if args.workers == 1 or len(jobs) <= 1:
        for _ in progress(map(_make_one, jobs), desc=desc, total=len(jobs), quiet=args.quiet, unit="clip"):
            pass
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            done = pool.map(_make_one, jobs, chunksize=4)
            for _ in progress(done, desc=desc, total=len(jobs), quiet=args.quiet, unit="clip"):
                pass
    elapsed = time.perf_counter() - start
    if not args.quiet:
        rate = len(jobs) / elapsed if elapsed > 0 else 0.0
        print(f"wrote {len(jobs)} clips to {out_dir} ({rate:.1f} clips/s), skipped {skipped} complete ones")
    return 0
