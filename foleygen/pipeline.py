"""A whole folder through generation's three stages, overlapped: load, generate, write.

``foleygen generate`` turns each batch of videos into files in three stages:

1. **load**: probe, decode the frames, run the visual encoder (:meth:`FoleyGen.load_videos`);
2. **generate**: the LM samples the codes (:meth:`FoleyGen.generate_loaded`);
3. **write**: the codec decodes the codes, the audio is written, the video muxed, the plot drawn.

:func:`run_stages` runs them as a pipeline: while the LM works on batch ``i``, one thread loads batch
``i + 1`` and another writes batch ``i - 1``. Decoding (FFmpeg), the file writes and most torch kernels
release the GIL, so the stages overlap on separate cores. At most one batch is loaded ahead and one
waits to be written, so memory stays that of three batches whatever the folder's size. With
``overlap=False`` the stages run one after another (the comparison of ``benchmarks/folder.py``).

Overlap pays only where the side stages find a core the LM does not use (:func:`overlap_pays`): on a
2-core machine whose two cores the LM's thread pool already holds, the LM slowed more than the side
stages saved (0.72-1.0x the throughput of the stages in turn; docs/performance.md has the figures).

Each stage function is given one batch and must deal with its own files' failures (report them and
return what is left): an exception that escapes a stage is re-raised here, as it would be without the
pipeline. The order of the outputs, and so the random draws, are those of a run without overlap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["StageTimes", "overlap_pays", "run_stages"]

Batch = TypeVar("Batch")


@dataclass
class StageTimes:
    """Seconds each stage was busy (summed over batches), and the wall time of the whole run."""

    load: float = 0.0
    generate: float = 0.0
    write: float = 0.0
    wall: float = 0.0

    @property
    def sequential(self) -> float:
        """The three stages' busy times added: the wall time they would take one after another."""
        return self.load + self.generate + self.write

    def as_dict(self) -> dict[str, float]:
        """Rounded seconds for a JSON summary (``overlap_gain`` = sequential / wall)."""
        gain = self.sequential / self.wall if self.wall > 0 else 0.0
        return {
            "load_s": round(self.load, 3),
            "generate_s": round(self.generate, 3),
            "write_s": round(self.write, 3),
            "stages_sum_s": round(self.sequential, 3),
            "wall_s": round(self.wall, 3),
            "overlap_gain": round(gain, 3),
        }


def _timed(times: StageTimes, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
    started = time.perf_counter()
    try:
        return fn(*args)
    finally:
        setattr(times, stage, getattr(times, stage) + time.perf_counter() - started)


def overlap_pays(choice: str = "auto") -> bool:
    """``"on"``/``"off"``, or for ``"auto"``: whether this process has a core to spare beyond the LM's
    torch threads (``torch.get_num_threads()``) for the side stages (one thread each)."""
    if choice in ("on", "off"):
        return choice == "on"
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores > torch.get_num_threads()


def _one_thread() -> None:
    """A side stage's torch ops run on its own thread only: the LM keeps every core of its pool, and
    two OpenMP teams never spin against each other."""
    import torch

    torch.set_num_threads(1)


def run_stages(
    batches: Sequence[Batch],
    load: Callable[[Batch], Any],
    generate: Callable[[Any], Any],
    write: Callable[[Any], None],
    *,
    overlap: bool = True,
    on_batch: Callable[[], None] | None = None,
) -> StageTimes:
    """Run ``write(generate(load(batch)))`` for every batch, the three stages overlapped (see the module).

    ``on_batch`` is called after each batch's generation (a progress bar). Ctrl-C stops at once: the
    write in progress finishes (its files are whole), the loaded batch ahead is dropped.
    """
    times = StageTimes()
    started = time.perf_counter()
    if not overlap:
        for batch in batches:
            loaded = _timed(times, "load", load, batch)
            made = _timed(times, "generate", generate, loaded)
            if on_batch:
                on_batch()
            _timed(times, "write", write, made)
        times.wall = time.perf_counter() - started
        return times
    loader = ThreadPoolExecutor(1, thread_name_prefix="foleygen-load", initializer=_one_thread)
    writer = ThreadPoolExecutor(1, thread_name_prefix="foleygen-write", initializer=_one_thread)
    writing: Future[None] | None = None
    try:
        ahead = loader.submit(_timed, times, "load", load, batches[0]) if batches else None
        for i in range(len(batches)):
            assert ahead is not None
            loaded = ahead.result()
            ahead = loader.submit(_timed, times, "load", load, batches[i + 1]) if i + 1 < len(batches) else None
            made = _timed(times, "generate", generate, loaded)
            if on_batch:
                on_batch()
            if writing is not None:
                writing.result()  # one batch waits to be written at most: memory stays bounded
            writing = writer.submit(_timed, times, "write", write, made)
        if writing is not None:
            writing.result()
    finally:
        loader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)
    times.wall = time.perf_counter() - started
    return times
