"""``foleygen prepare``: decode every clip once, store codec tokens + visual data in the cache.

For each clip of a manifest (shard): probe it, read ``min(duration, clip length)`` seconds of audio at
the codec's rate and of frames at the visual encoder's input rate, encode the audio to codes
``[K, T]``, and store either the frozen encoder's features ``[F', D]`` (float16) or, for a trainable
encoder (``compact``), the frames ``[F, S, S, 3]`` (uint8) that the LM task will encode itself.

Robust by construction: a clip that fails (missing stream, corrupt file, too short...) is recorded in
``failures.jsonl`` with its reason and skipped; finished clips are skipped when the same command runs
again (see :class:`foleygen.data.cache.ShardWriter`); shards (``shard=(i, n)``, or one per torchrun
rank) are independent and finalised atomically. Decoding runs in a few threads (PyAV releases the GIL)
while the previous batch is encoded.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen.data.cache import ShardWriter, collect_failures, init_cache, make_fingerprint
from foleygen.data.manifest import ClipEntry, Manifest
from foleygen.errors import FoleyGenError


@dataclass
class PrepareResult:
    """What one ``prepare`` run did to its shard."""

    shard: tuple[int, int]
    shard_dir: Path
    prepared: int
    skipped: int
    failed: int
    seconds: float

    @property
    def clips_per_s(self) -> float:
        """Prepared clips per wall-clock second."""
        return self.prepared / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Decoded:
    entry: ClipEntry
    wav: torch.Tensor | None = None  # float32 [C, S]
    frames: torch.Tensor | None = None  # uint8 [F, H, W, 3]
    seconds: float = 0.0
    error: str | None = None


def _describe(err: BaseException) -> str:
    if isinstance(err, FoleyGenError):
        return err.message
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def decode_clip(
    entry: ClipEntry, *, sample_rate: int, channels: int, encoder: Any, duration: float
) -> _Decoded:
    """Read one clip's audio ``[C, S]`` and frames ``[F, H, W, 3]``; errors become ``.error`` (never raised)."""
    from foleygen.io import probe, read_audio
    from foleygen.vision.frames import read_encoder_frames

    try:
        info = probe(entry.path)
        if not info.has_audio:
            return _Decoded(entry, error="no audio stream")
        if not info.has_video:
            return _Decoded(entry, error="no video stream")
        available = float(info.duration or 0.0) - entry.start
        if not available > 0:
            return _Decoded(entry, error=f"clip starts at {entry.start} s but the file lasts {info.duration} s")
        seconds = min(float(duration), available)
        wav = read_audio(entry.path, sample_rate, channels, start=entry.start, duration=seconds)
        frames = read_encoder_frames(entry.path, encoder, start=entry.start, duration=seconds, info=info)
        if frames.shape[0] == 0:
            return _Decoded(entry, error="no video frames in the clip")
        return _Decoded(entry, wav, frames, seconds)
    except Exception as err:  # one bad file must never stop a data set
        return _Decoded(entry, error=_describe(err))


def _encode_group(fn: Any, tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Run ``fn`` once on tensors of equal shape stacked into a batch; returns per-item CPU outputs."""
    out = fn(torch.stack(tensors).to(device))
    return [o.detach().cpu() for o in out]


def _encode_all(items: list[_Decoded], key: str, fn: Any, device: torch.device) -> dict[int, torch.Tensor | str]:
    """``fn`` over ``items`` grouped by shape (one batched call per group; per item if a group fails)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(tuple(getattr(item, key).shape), []).append(i)
    results: dict[int, torch.Tensor | str] = {}
    for members in groups.values():
        try:
            outs = _encode_group(fn, [getattr(items[i], key) for i in members], device)
            results.update(zip(members, outs, strict=True))
        except Exception:
            for i in members:  # find the culprit(s)
                try:
                    results[i] = _encode_group(fn, [getattr(items[i], key)], device)[0]
                except Exception as err:
                    results[i] = f"{key} encoding failed: {_describe(err)}"
    return results


def prepare_cache(
    manifest: Manifest,
    cache_dir: str | os.PathLike[str],
    codec: Any,
    encoder: Any,
    *,
    codec_name: str,
    visual_kind: str,
    visual_path: str | None = None,
    duration: float = 10.0,
    shard: tuple[int, int] = (0, 1),
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    workers: int = 2,
    quiet: bool = False,
) -> PrepareResult:
    """Fill shard ``shard`` of the cache at ``cache_dir`` with the clips of ``manifest``.

    Args:
        manifest: the clips (all splits; the shard takes every n-th clip).
        codec: an :class:`~foleygen.codecs.AudioCodec` (``encode(wav [B, C, S]) -> [B, K, T]``).
        encoder: a :class:`~foleygen.vision.VisualEncoder`; trainable ones get frames stored.
        codec_name / visual_kind / visual_path: recorded in the fingerprint.
        duration: seconds stored per clip at most (shorter clips are stored as they are).
        shard: ``(index, count)``.
        batch_size: clips decoded and encoded together.
        workers: decoding threads.
    """
    t0 = time.perf_counter()
    device = torch.device(device)
    trainable = bool(getattr(encoder, "trainable", False))
    fingerprint = make_fingerprint(
        codec={
            "name": codec_name,
            "sample_rate": int(codec.sample_rate),
            "frame_rate": float(codec.frame_rate),
            "num_codebooks": int(codec.num_codebooks),
            "cardinality": int(codec.cardinality),
            "channels": int(codec.channels),
        },
        visual={
            "kind": visual_kind,
            "path": visual_path,
            "fps": float(encoder.fps),
            "input_fps": float(getattr(encoder, "input_fps", encoder.fps)),
            "dim": int(encoder.dim),
            "image_size": int(encoder.image_size),
            "trainable": trainable,
        },
        duration=duration,
    )
    init_cache(cache_dir, fingerprint)
    writer = ShardWriter(cache_dir, *shard)
    entries = manifest.shard(*shard).entries
    if writer.complete:
        return PrepareResult(shard, writer.final, 0, len(entries), 0, time.perf_counter() - t0)
    todo = [e for e in entries if e.id not in writer.done and e.id not in writer.failed]
    skipped = len(entries) - len(todo)
    codec = codec.to(device).eval()
    encoder = encoder.to(device).eval()

    def decode(entry: ClipEntry) -> _Decoded:
        return decode_clip(
            entry,
            sample_rate=int(codec.sample_rate),
            channels=int(codec.channels),
            encoder=encoder,
            duration=duration,
        )

    def encode_audio(wav: torch.Tensor) -> torch.Tensor:
        return codec.encode(wav)

    def encode_visual(frames: torch.Tensor) -> torch.Tensor:
        return frames if trainable else encoder.encode(frames)

    import sys

    from tqdm.auto import tqdm

    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    prepared = failed = 0
    # unit "clip": tqdm shows clips/s and the ETA
    bar = tqdm(
        total=len(todo),
        desc=f"prepare {shard[0]}/{shard[1]}",
        unit="clip",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=quiet,
    )
    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool,
            torch.inference_mode(),
        ):
            pending: list[Future[_Decoded]] = [pool.submit(decode, e) for e in batches[0]] if batches else []
            for b in range(len(batches)):
                decoded = [f.result() for f in pending]
                pending = [pool.submit(decode, e) for e in batches[b + 1]] if b + 1 < len(batches) else []
                ok = [d for d in decoded if d.error is None]
                codes = _encode_all(ok, "wav", encode_audio, device)
                visual = _encode_all(ok, "frames", encode_visual, device)
                for i, d in enumerate(ok):
                    if isinstance(codes[i], str) or isinstance(visual[i], str):
                        d.error = codes[i] if isinstance(codes[i], str) else visual[i]  # type: ignore[assignment]
                        continue
                    v = visual[i].numpy() if trainable else visual[i].float().numpy().astype(np.float16)  # type: ignore[union-attr]
                    writer.add(
                        d.entry.id,
                        codes[i].numpy(),
                        v,
                        split=d.entry.split,  # type: ignore[union-attr]
                        label=d.entry.label,
                        seconds=d.seconds,
                    )
                    prepared += 1
                for d in decoded:
                    if d.error is not None:
                        writer.fail(d.entry.id, str(d.entry.path), d.error)
                        failed += 1
                bar.update(len(decoded))
                bar.set_postfix(failed=failed, refresh=False)
        writer.finalize()
    except BaseException:
        writer.close()  # the shard stays resumable
        raise
    finally:
        bar.close()
        collect_failures(cache_dir)
    return PrepareResult(shard, writer.final, prepared, skipped, failed, time.perf_counter() - t0)
