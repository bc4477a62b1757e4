"""``foleygen live SOURCE``: a soundtrack generated while the video comes in.

SOURCE: a video file (full speed, or at its own pace with ``--realtime``), a V4L2 device
(``/dev/video0``), a URL (``rtsp://``, ``http://``, ``udp://``...) or ``-`` (a stream on stdin: MPEG-TS,
y4m...). Outputs, any of them together: ``--out FILE.wav|.flac`` (grows as it goes, valid at every
moment), ``--pcm`` (raw s16le on stdout, e.g. ``| aplay -f S16_LE -r 16000 -c 1``) and ``--mux
FILE.ts|.mp4`` (the video copied, the new audio as AAC; MP4s are fragmented). Ctrl-C (or SIGTERM)
finishes the audio of the frames so far and closes every output cleanly. A source that stalls for
``--stall-timeout`` seconds ends the run with one line. See docs/io.md ("Live generation") for the
latency budget and the degrade rule.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path
from typing import Any

HELP = "generate a soundtrack live from a file, a camera, a URL or stdin"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``foleygen live``."""
    parser.add_argument("source", metavar="SOURCE", help="video file, /dev/videoN, rtsp/http/udp URL, or - (stdin)")
    parser.add_argument("--out", metavar="FILE", help="audio file growing as it goes (.wav or .flac)")
    parser.add_argument("--pcm", action="store_true", help="raw 16-bit little-endian PCM on stdout (for aplay)")
    parser.add_argument("--mux", metavar="FILE", help="video with the new audio (.ts, or .mp4: fragmented)")
    parser.add_argument("--model", default="demo", help="'demo' (default), 'debug', a checkpoint folder or a Hub id")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    by_model = "default: the model's"
    parser.add_argument("--cfg", type=float, default=None, help=f"classifier-free guidance scale (1 = off; {by_model})")
    parser.add_argument("--top-k", type=int, default=None, help=f"sample among the k most likely codes ({by_model})")
    parser.add_argument("--top-p", type=float, default=None, help=f"nucleus sampling mass (0 = off; {by_model})")
    parser.add_argument("--temperature", type=float, default=None, help=f"sampling temperature ({by_model})")
    parser.add_argument("--realtime", action="store_true", help="play a file at its own pace (as a camera would)")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds of video (default: when the source ends, or Ctrl-C)",
    )
    parser.add_argument(
        "--stall-timeout", type=float, default=10.0, help="seconds without a frame before giving up (default 10)"
    )
    parser.add_argument(
        "--max-lag",
        type=float,
        default=1.0,
        help="seconds of delay past which guidance is dropped to keep up (paced sources; default 1)",
    )
    parser.add_argument(
        "--lookahead",
        type=float,
        default=None,
        metavar="SECONDS",
        help="accept this much latency to run a 'full'-mask model (it must cover the model's window)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stderr at the end")


def _check(args: argparse.Namespace) -> None:
    from foleygen.errors import ConfigError
    from foleygen.io.media_types import AUDIO_OUTPUT_EXTENSIONS, STREAM_MUX_FORMATS

    if not (args.out or args.pcm or args.mux):
        raise ConfigError("no output: give --out FILE.wav|.flac, --pcm and/or --mux FILE.ts|.mp4")
    if args.out and Path(args.out).suffix.lower() not in AUDIO_OUTPUT_EXTENSIONS:
        raise ConfigError(f"--out must end in .wav or .flac: {args.out}")
    if args.mux and Path(args.mux).suffix.lower() not in STREAM_MUX_FORMATS:
        raise ConfigError(f"--mux must end in .ts or .mp4: {args.mux}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise ConfigError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    if args.pcm and sys.stdout.isatty():
        raise ConfigError("--pcm writes raw audio on stdout: pipe it (| aplay -f S16_LE ...) or redirect it")


def _allow_full(model: Any, lookahead: float | None) -> bool:
    """A ``full``-mask model sees its whole window: only with an explicit ``--lookahead`` covering it."""
    from foleygen.errors import ConfigError

    if model.lm.config.visual_attention != "full":
        return False
    if lookahead is None:
        raise ConfigError(
            "this model's visual attention is 'full': each audio frame looks at its whole window of video, so "
            f"audio can only come {model.duration:g} s late; pass --lookahead {model.duration:g} to accept that"
        )
    if lookahead < model.duration:
        raise ConfigError(
            f"--lookahead {lookahead:g} s is shorter than this 'full' model's window ({model.duration:g} s)"
        )
    return True


def run(args: argparse.Namespace) -> int:
    """Run until the source ends, stalls or Ctrl-C; 0 when the outputs were finished."""
    from foleygen.api import FoleyGen
    from foleygen.outputs.incremental import MuxWriter, PcmWriter, abort, commit
    from foleygen.sources import FrameSource
    from foleygen.streamio import StreamRun, audio_writer, copies_video
    from foleygen.vision.frames import decode_size

    _check(args)
    model = FoleyGen.from_pretrained(args.model, device=args.device)
    flags = {"top_k": args.top_k, "top_p": args.top_p, "temperature": args.temperature, "cfg_coef": args.cfg}
    model.update_generation_params(**{k: v for k, v in flags.items() if v is not None})
    allow_full = _allow_full(model, args.lookahead)
    enc = model.visual_encoder
    source = FrameSource(
        args.source,
        fps=float(enc.input_fps),
        size_for=lambda w, h: decode_size(enc, w, h),
        realtime=args.realtime,
        stall_timeout=args.stall_timeout,
        duration=args.duration,
        packets=bool(args.mux),
    )
    writers: list[Any] = []
    muxer = None
    # SIGTERM (a service manager, `timeout`) ends the run like Ctrl-C: outputs finished, not cut
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.out:
            writers.append(audio_writer(args.out, model.sample_rate, model.channels, staged=False))
        if args.pcm:
            writers.append(PcmWriter())
        if args.mux:
            copy = copies_video(source, args.mux)
            source.decoded = not copy
            muxer = MuxWriter(
                args.mux, model.sample_rate, model.channels, video=source.stream, copy_video=copy, staged=False
            )
            writers.append(muxer)
        quiet = args.quiet or args.json  # the JSON line alone, for scripts
        status = None if quiet else (lambda line: print(f"\rfoleygen live: {line}", end="", file=sys.stderr))
        warn = None if quiet else (lambda m: print(f"\nfoleygen live: {m}", file=sys.stderr))
        if not quiet and not allow_full:
            lat = _latency(model, source.fps)
            print(f"foleygen live: algorithmic latency {1000 * lat:.0f} ms; Ctrl-C to stop", file=sys.stderr)
        runner = StreamRun(
            model,
            source,
            writers,
            muxer=muxer,
            seed=args.seed,
            allow_full_mask=allow_full,
            max_lag=args.max_lag,
            status=status,
            warn=warn,
            finish_on_error=True,
        )
        stats = runner.run()
        commit(writers)
    except BaseException:
        source.close()
        abort(writers)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    lat = sorted(stats.latencies)
    summary = {
        "source": args.source,
        "ended_by": stats.ended_by,
        "video_seconds": round(stats.media_seconds, 3),
        "real_time_factor": round(stats.real_time_factor, 3),
        "latency_ms": {
            "p50": round(1000 * lat[len(lat) // 2], 1) if lat else None,
            "p95": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None,
            "max": round(1000 * lat[-1], 1) if lat else None,
        },
        "degraded": stats.degraded,
        "outputs": [p for p in (args.out, args.mux) if p] + (["stdout (pcm)"] if args.pcm else []),
    }
    if args.json:
        print(json.dumps(summary), file=sys.stderr)
    elif not args.quiet:
        p = summary["latency_ms"]
        print(
            f"\nfoleygen live: {'stopped' if stats.error else stats.ended_by}: {stats.media_seconds:.1f} s of video, "
            f"{stats.real_time_factor:.2f}x real time, latency p50 {p['p50']} ms / p95 {p['p95']} ms",
            file=sys.stderr,
        )
    if stats.error is not None:  # outputs are finished; the run still did not end as asked
        print(f"foleygen live: {stats.error}", file=sys.stderr)
        return 1
    return 0


def _latency(model: Any, fps: float) -> float:
    from foleygen.stream import StreamSession

    return StreamSession(model, fps=fps).latency_seconds()["total"]
