"""``foleygen prepare MANIFEST --codec C --visual KIND[:PATH] -o CACHE``: tokens + visual data, once."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "decode a data set once into a training cache (codec tokens + visual features or frames)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``foleygen prepare``."""
    parser.add_argument("manifest", help="VGGSound CSV, generic CSV/JSONL (path,split[,label]) or SynthFoley dir")
    parser.add_argument("--codec", required=True, help="codec checkpoint (dir or file) or name ('demo')")
    parser.add_argument("--num-codebooks", type=int, default=None, help="use only the first K codebooks")
    parser.add_argument(
        "--visual",
        required=True,
        metavar="KIND[:PATH]",
        help="visual encoder: clip, vit, videomae, imagebind, compact, with its checkpoint after "
        "a colon (e.g. clip:models/clip-vit-base-patch32)",
    )
    parser.add_argument("--visual-fps", type=float, default=None, help="feature rate (default: the encoder's)")
    parser.add_argument("--image-size", type=int, default=None, help="compact only: frame side S to store")
    parser.add_argument("-o", "--output", required=True, help="cache directory (created; resumable)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds stored per clip at most")
    parser.add_argument(
        "--shard",
        default=None,
        metavar="i/n",
        help="prepare shard i of n (default: 0/1, or RANK/WORLD_SIZE under torchrun)",
    )
    parser.add_argument(
        "--video-dir", default=None, help="VGGSound: the clip directory (default: video/ beside the CSV)"
    )
    parser.add_argument("--splits", default=None, help="comma-separated splits to keep (default: all)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=int, default=8, help="clips encoded together")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads")


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    from foleygen.errors import ConfigError

    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {text}: need 0 <= i < n")
    return i, n


def run(args: argparse.Namespace) -> int:
    """Prepare one shard of the cache and print a summary."""
    import torch

    from foleygen.codecs import load_codec
    from foleygen.data.manifest import load_manifest
    from foleygen.data.prepare import prepare_cache
    from foleygen.vision import load_visual_encoder

    shard = _parse_shard(args.shard)
    device = args.device
    if shard is None and "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun: one shard per rank
        shard = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
        if device == "auto" and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    shard = shard or (0, 1)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    manifest = load_manifest(args.manifest, video_dir=args.video_dir)
    if args.splits:
        manifest = manifest.split([s.strip() for s in args.splits.split(",") if s.strip()])
    kind, _, path = args.visual.partition(":")
    options = {"image_size": args.image_size} if args.image_size else {}
    encoder = load_visual_encoder(kind, path or None, fps=args.visual_fps, **options)
    codec = load_codec(args.codec, num_codebooks=args.num_codebooks)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"[foleygen prepare] {msg}", file=sys.stderr))
    if manifest.missing:
        say(f"{len(manifest.missing)} clip(s) of the manifest not found, e.g. {', '.join(manifest.missing[:5])}")
    say(
        f"{len(manifest)} clips; shard {shard[0]}/{shard[1]}: {len(manifest.entries[shard[0] :: shard[1]])}; "
        f"codec K={codec.num_codebooks} x {codec.cardinality} at {codec.frame_rate} Hz; visual {kind} "
        f"({'frames' if getattr(encoder, 'trainable', False) else 'features'}) at {encoder.fps} fps; {device}"
    )
    result = prepare_cache(
        manifest,
        args.output,
        codec,
        encoder,
        codec_name=args.codec,
        visual_kind=kind,
        visual_path=path or None,
        duration=args.duration,
        shard=shard,
        device=device,
        batch_size=args.batch_size,
        workers=args.workers,
        quiet=args.quiet,
    )
    say(
        f"shard {shard[0]}/{shard[1]}: {result.prepared} prepared ({result.clips_per_s:.2f} clips/s), "
        f"{result.skipped} already done, {result.failed} failed (see {args.output}/failures.jsonl) -> "
        f"{result.shard_dir}"
    )
    return 0
