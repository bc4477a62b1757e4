"""SynthFoley generation speed on this machine (one process), and the onset metric's sanity numbers.

Prints one JSON object:

* ``generate_clips_per_s``: in-memory ``generate_clip`` (physics + audio + frames at ``--size``).
* ``audio_only_clips_per_s``: the same with 16 px frames (audio does not depend on the frame size),
  what the classifier training and audio-only work pay.
* ``write_clips_per_s``: generate + ``write_clip`` (H.264 + ALAC mp4 and JSON) into a temporary folder.
* ``realtime_factor``: seconds of clip made per second of compute (in memory).
* ``onsets`` (``--onset-clips N``): detector F1 / precision / recall / mean |offset| on clean
  test-split ground-truth audio, and events per clip.

    python benchmarks/synthfoley.py                      # 20 clips each way
    python benchmarks/synthfoley.py --clips 50 --onset-clips 300
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--onset-clips", type=int, default=0)
    args = parser.parse_args()

    from foleygen.data.synthfoley import SynthFoleyConfig, generate_clip, write_clip
    from foleygen.machine import machine_report

    config = SynthFoleyConfig(size=args.size, duration=args.duration)
    small = dataclasses.replace(config, size=16)
    generate_clip("val", 0, 0, config)  # warm-up (filter design caches, imports)

    def rate(fn) -> float:
        start = time.perf_counter()
        for i in range(args.clips):
            fn(i)
        return args.clips / (time.perf_counter() - start)

    result = {
        "machine": machine_report(),
        "clips": args.clips,
        "size": args.size,
        "duration": args.duration,
        "generate_clips_per_s": rate(lambda i: generate_clip("val", 1, i, config)),
        "audio_only_clips_per_s": rate(lambda i: generate_clip("val", 1, i, small)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["write_clips_per_s"] = rate(lambda i: write_clip(generate_clip("val", 1, i, config), tmp))
    result["realtime_factor"] = result["generate_clips_per_s"] * args.duration
    if args.onset_clips:
        from foleygen.eval.onsets import aggregate_scores, evaluate_clip

        scores, events = [], 0
        for i in range(args.onset_clips):
            clip = generate_clip("test", 0, i, small)
            events += sum(e["kind"] == "impact" for e in clip.events)
            scores.append(evaluate_clip(clip.audio, clip.sample_rate, clip.events))
        agg = aggregate_scores(scores).as_dict()
        result["onsets"] = {"clips": args.onset_clips, "impacts_per_clip": events / args.onset_clips, **agg}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
