"""``foleygen generate``: write a soundtrack for each video (an audio file and the video with it muxed in).

Inputs are video files, directories (their video files, recursively) or CSV files whose rows are
``path[,duration]`` (paths relative to the CSV's folder; a header row is optional). For each input
``<stem>.<ext>`` it writes ``OUTDIR/<stem>.<format>`` and, unless ``--no-mux``, ``OUTDIR/<stem>.mp4``
(the video's packets copied, the new audio as AAC). A file that fails is reported on one line and the
others go on; the exit code is 1 when any failed. Outputs of a file that failed halfway are removed,
and every write is atomic, so no partial file is ever left under a final name.

Each file is probed once and decoded once (:meth:`foleygen.FoleyGen.generate_results`, the plot's
thumbnails cut in the same pass); its files are written by the shared writer
:func:`foleygen.outputs.write.write_result`, through :func:`write_outputs`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foleygen.errors import quote_path
from foleygen.utils import user_path

HELP = "generate soundtracks for videos (files, folders or a CSV of path[,duration])"


@dataclass
class Job:
    """One input video and what to write for it."""

    path: Path
    duration: float | None  # seconds of audio; None: the video's own duration
    stem: str
    outputs: list[Path] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``foleygen generate``."""
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, folders, or CSV files (path[,duration])"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    parser.add_argument(
        "--model",
        default="demo",
        help="'demo' (embedded, default), 'debug' (tiny random), a checkpoint folder or a cached Hub id",
    )
    # Sampling settings default to the checkpoint's own (its config.json; e.g. the demo model's temperature)
    by_model = "default: the model's"
    parser.add_argument("--cfg", type=float, default=None, help=f"classifier-free guidance scale (1 = off; {by_model})")
    parser.add_argument("--top-k", type=int, default=None, help=f"sample among the k most likely codes ({by_model})")
    parser.add_argument("--top-p", type=float, default=None, help=f"nucleus sampling mass (0 = off; {by_model})")
    parser.add_argument(
        "--temperature", type=float, default=None, help=f"sampling temperature (0 = greedy; {by_model})"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same audio")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of audio per video (default: each video's duration; a CSV column wins)",
    )
    parser.add_argument("--format", choices=("wav", "flac"), default="wav", help="audio file format (default wav)")
    parser.add_argument("--no-mux", action="store_true", help="write only the audio, not the .mp4 with it")
    parser.add_argument(
        "--keep-original-audio", action="store_true", help="keep the video's own audio as a second track of the .mp4"
    )
    parser.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs all exist")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="videos generated together (default 1; batches change the random draws)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--overlap",
        choices=("auto", "on", "off"),
        default="auto",
        help="overlap the stages of a folder (load, LM, codec+write): auto (default) when the machine has "
        "cores beyond the LM's threads for the side stages (docs/performance.md), on, or off",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")
    parser.add_argument(
        "--plot",
        action="store_true",
        help="also write <stem>.png: video frames over the new audio's mel spectrogram, with audio onsets, "
        "visual motion peaks and (if <video>.json holds SynthFoley events) the true events",
    )


Problem = tuple[Path, str]  # an input that cannot run, and why (one line, without the path)


def collect_jobs(inputs: list[str], duration: float | None) -> tuple[list[Job], list[Problem]]:
    """Expand files, folders and CSV files into jobs, and the inputs that cannot run into problems.

    Nothing here stops the run: a folder without videos, an entry that is not a file (broken link,
    FIFO, folder named ``x.mp4``), a bad CSV row, an unreadable CSV and a second input whose stem
    would overwrite the first one's outputs are each a problem, reported and counted as failed while
    the other inputs go on. A file that looks fine here may still fail when it is opened.
    """
    from foleygen.cli.inputs import expand_folder
    from foleygen.io.media_types import VIDEO_EXTENSIONS

    jobs: list[Job] = []
    problems: list[Problem] = []
    for raw in inputs:
        path = user_path(raw)
        if path.is_dir():
            found = expand_folder(path, VIDEO_EXTENSIONS)
            if not found:
                problems.append((path, "folder holds no video files (in it or below)"))
            for entry in found:
                if entry.problem is None:
                    jobs.append(Job(entry.path, duration, entry.path.stem))
                else:
                    problems.append((entry.path, entry.problem))
        elif path.suffix.lower() == ".csv":
            rows, bad = _read_csv(path, duration)
            jobs += rows
            problems += bad
        else:
            # A missing or broken file is that file's failure, reported when its turn comes.
            jobs.append(Job(path, duration, path.stem))
    unique = list({job.path: job for job in jobs}.values())  # the same file given twice runs once
    seen: dict[str, Path] = {}
    kept = []
    for job in unique:
        if job.stem in seen:
            problems.append(
                (job.path, f"would write the same outputs ({job.stem}.*) as {quote_path(seen[job.stem])}; rename one")
            )
            continue
        seen[job.stem] = job.path
        kept.append(job)
    return kept, problems


def _read_csv(path: Path, duration: float | None) -> tuple[list[Job], list[Problem]]:
    """Jobs from the rows of a ``path[,duration]`` CSV; each bad row is a problem and is skipped."""
    from foleygen.io._common import not_a_file_problem

    problem = not_a_file_problem(path)
    if problem is not None:
        return [], [(path, problem.replace("media file", "CSV file"))]
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return [], [(path, f"not a text CSV list (byte {err.start} is not UTF-8)")]
    if "\x00" in text:
        return [], [(path, "not a text CSV list (it holds NUL bytes: a binary file?)")]
    jobs: list[Job] = []
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # e.g. a field past csv's size limit: that row only
            problems.append((path, f"line {reader.line_num}: not a CSV row ({err}); row skipped"))
            continue
        lineno = reader.line_num
        row = [cell.strip() for cell in row]
        if not any(row) or row[0].startswith("#"):
            continue
        if lineno == 1 and row[0].lower() in ("path", "video", "file"):
            continue  # header
        if not row[0]:
            problems.append((path, f"line {lineno}: no video path in the first column; row skipped"))
            continue
        video = user_path(row[0])
        video = video if video.is_absolute() else path.parent / video
        seconds = duration
        if len(row) > 1 and row[1]:
            try:
                seconds = float(row[1])
            except ValueError:
                problems.append((path, f"line {lineno}: duration {row[1]!r} is not a number; row skipped"))
                continue
            if not (math.isfinite(seconds) and seconds > 0):
                problems.append(
                    (path, f"line {lineno}: duration must be a positive number of seconds, got {row[1]!r}; row skipped")
                )
                continue
        jobs.append(Job(video, seconds, video.stem))
    return jobs, problems


def planned_outputs(job: Job, outdir: Path, args: argparse.Namespace) -> list[Path]:
    """The files a job writes."""
    outputs = [outdir / f"{job.stem}.{args.format}"]
    if not args.no_mux:
        outputs.append(outdir / f"{job.stem}.mp4")
    if getattr(args, "plot", False):
        outputs.append(outdir / f"{job.stem}.png")
    return outputs


def ground_truth_events(video: Path) -> list[dict[str, Any]] | None:
    """SynthFoley-style events stored beside a video (``<stem>.json`` with an ``events`` list), if any."""
    meta = video.with_suffix(".json")
    try:
        events = json.loads(meta.read_text()).get("events") if meta.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None  # not ours: a plot without true events is still useful
    return events if isinstance(events, list) else None


def write_outputs(job: Job, result: Any, args: argparse.Namespace) -> list[Path]:
    """Everything written for one finished video (a :class:`~foleygen.results.GenerationResult`): the
    audio file, the muxed video, the picture; all of them or none (:func:`foleygen.outputs.write.write_result`)."""
    from foleygen.outputs.write import PLOT_FRAMES, PlotSpec, write_result

    outputs = planned_outputs(job, Path(args.output), args)
    plot = next((p for p in outputs if p.suffix == ".png"), None)
    spec = None
    if plot is not None:
        spec = PlotSpec(result.extra_frames[0], PLOT_FRAMES.fps, title=job.stem, events=ground_truth_events(job.path))
    return write_result(
        result,
        audio=outputs[0],
        video=next((p for p in outputs if p.suffix == ".mp4"), None),
        plot=plot,
        plot_spec=spec,
        keep_original_audio=args.keep_original_audio,
    )


def _spare_the_inputs(jobs: list[Job], outdir: Path, args: argparse.Namespace) -> tuple[list[Job], list[Problem]]:
    """Refuse jobs whose outputs would replace an input file (``-o`` the videos' own folder with the
    .mp4 they came as): writing would destroy the video being read."""
    inputs = {}
    for job in jobs:
        try:
            inputs[job.path.resolve()] = job
        # A link loop (Python 3.11 says RuntimeError, 3.13 OSError): its own failure comes when it is opened
        except (OSError, RuntimeError):
            continue
    kept, problems = [], []
    for job in jobs:
        clash = None
        for out in planned_outputs(job, outdir, args):
            try:
                resolved = out.resolve()
            except (OSError, RuntimeError):  # an output name that is a link loop: mux/write says so
                continue
            if resolved in inputs:
                clash = (out, inputs[resolved].path)
                break
        if clash is None:
            kept.append(job)
        else:
            problems.append(
                (
                    job.path,
                    f"its output {quote_path(clash[0])} would replace the input {quote_path(clash[1])}; "
                    "choose another -o",
                )
            )
    return kept, problems


def _batches(jobs: list[Job], size: int) -> list[list[Job]]:
    """Consecutive jobs with the same duration setting, ``size`` at most per batch."""
    batches: list[list[Job]] = []
    for job in jobs:
        if batches and len(batches[-1]) < size and batches[-1][0].duration == job.duration:
            batches[-1].append(job)
        else:
            batches.append([job])
    return batches


def run(args: argparse.Namespace) -> int:
    """Generate for every input; print a summary (or JSON); exit 1 if any input failed."""
    from foleygen.api import FoleyGen
    from foleygen.errors import ConfigError, one_line
    from foleygen.io._common import make_output_dir
    from foleygen.staging import remove_stale_temporaries
    from foleygen.utils import progress

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise ConfigError(f"--duration must be a positive number of seconds, got {args.duration}")
    outdir = make_output_dir(user_path(args.output))
    args.output = str(outdir)  # write_outputs writes where the folder was made (a "~" expanded)
    leftovers = remove_stale_temporaries(outdir)  # of an earlier run that was killed mid-write
    if leftovers and not args.quiet:
        print(
            f"foleygen generate: removed {len(leftovers)} unfinished temporary file(s) of an interrupted run "
            f"in {quote_path(outdir)}",
            file=sys.stderr,
        )
    jobs, problems = collect_jobs(args.inputs, args.duration)
    jobs, clashes = _spare_the_inputs(jobs, outdir, args)
    problems += clashes
    skipped = []
    if args.skip_existing:
        skipped = [j for j in jobs if all(p.is_file() for p in planned_outputs(j, outdir, args))]
        jobs = [j for j in jobs if j not in skipped]
    quiet = args.quiet or args.json

    started = time.perf_counter()
    model = FoleyGen.from_pretrained(args.model, device=args.device) if jobs else None
    done: list[Job] = []
    failed: list[tuple[Job, str]] = []

    def report_failure(job: Job, err: Exception) -> None:
        message = one_line(err, job.path)
        failed.append((job, message))
        print(f"foleygen generate: failed: {message}", file=sys.stderr)

    for path, problem in problems:  # known before any work: said first, counted as failed
        message = f"{quote_path(path)}: {problem}"
        failed.append((Job(path, None, path.stem), message))
        print(f"foleygen generate: failed: {message}", file=sys.stderr)

    from foleygen.outputs.write import PLOT_FRAMES
    from foleygen.pipeline import StageTimes, overlap_pays, run_stages
    from foleygen.streamio import long_video_path_applies, stream_long_jobs

    flags = {"top_k": args.top_k, "top_p": args.top_p, "temperature": args.temperature, "cfg_coef": args.cfg}
    keep = bool(args.keep_original_audio)

    def load(batch: list[Job]) -> tuple[Any, list[Job], list[tuple[Job, Any]]]:
        """Stage 1: the batch's settings; its long videos set aside (streamed later, window by window);
        the others probed, decoded and encoded, each file's failure its own."""
        assert model is not None
        # flags left out keep the checkpoint's own settings
        given = {k: v for k, v in flags.items() if v is not None}
        params = model.generation_params(**given, duration=batch[0].duration)
        long_jobs, loaded = [], []
        for job in batch:
            try:
                if not args.plot and long_video_path_applies(model, job.path, job.duration, keep):
                    long_jobs.append(job)
                    continue
                extra = [PLOT_FRAMES] if args.plot else []
                loaded.append((job, model.load_videos([job.path], params=params, extra_frames=extra)[0]))
            except Exception as err:  # not only our own errors: one file's bug must not cost the others
                report_failure(job, err)
        return params, long_jobs, loaded

    def generate(stage: tuple[Any, list[Job], list[tuple[Job, Any]]]) -> list[tuple[Job, Any, Any]]:
        """Stage 2: the long videos streamed to their files; the codes of the others, batched (on an
        error, each file on its own, so the good ones still get done)."""
        assert model is not None
        params, long_jobs, loaded = stage
        stream_long_jobs(model, long_jobs, args, planned_outputs, done, report_failure, params)
        if not loaded:
            return []
        try:
            items = [item for _, item in loaded]
            codes = model.generate_loaded(items, seed=args.seed, progress=not quiet, params=params)
            return [(job, item, c) for (job, item), c in zip(loaded, codes, strict=True)]
        except Exception as err:
            if len(loaded) == 1:
                report_failure(loaded[0][0], err)
                return []
        made: list[tuple[Job, Any, Any]] = []
        for job, item in loaded:
            try:
                [c] = model.generate_loaded([item], seed=args.seed, progress=not quiet, params=params)
                made.append((job, item, c))
            except Exception as single:
                report_failure(job, single)
        return made

    def write(made: list[tuple[Job, Any, Any]]) -> None:
        """Stage 3: the codec decodes; audio, muxed video and picture written (all or none per file)."""
        assert model is not None
        for job, item, codes in made:
            try:
                job.outputs = write_outputs(job, model.result_of(item, codes), args)
                done.append(job)
            except Exception as err:  # any failure is this file's: the batch goes on
                report_failure(job, err)

    batches = _batches(jobs, args.batch_size)
    unit = "batch" if args.batch_size > 1 else "video"
    # tqdm counts an item when the next one is asked for: the first next() shows 0/N, the one after each
    # batch counts it, and the last batch's closes the bar at N/N
    ticks = iter(progress(range(len(batches)), desc="videos", total=len(batches), quiet=quiet, unit=unit))
    next(ticks, None)
    times, overlap = StageTimes(), overlap_pays(args.overlap)
    if batches:
        times = run_stages(batches, load, generate, write, overlap=overlap, on_batch=lambda: next(ticks, None))
    next(ticks, None)

    elapsed = time.perf_counter() - started
    summary = {
        "model": args.model,
        "output_dir": str(outdir),
        "generated": [{"input": str(j.path), "outputs": [str(p) for p in j.outputs]} for j in done],
        "skipped": [str(j.path) for j in skipped],
        "failed": [{"input": str(j.path), "error": msg} for j, msg in failed],
        "seconds": round(elapsed, 3),
        # clips/s over the generation itself (the model's loading excluded); stages: busy seconds each
        "clips_per_second": round(len(done) / times.wall, 3) if times.wall > 0 else 0.0,
        "stages": {**times.as_dict(), "overlapped": overlap},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet or failed:
        print(
            f"foleygen generate: {len(done)} generated, {len(skipped)} skipped, {len(failed)} failed "
            f"in {elapsed:.1f} s -> {outdir}",
            file=sys.stderr,
        )
    return 1 if failed else 0
