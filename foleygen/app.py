"""The web demo: drop a video, get it back with a generated soundtrack and an alignment picture.

Only the public API is used: :class:`foleygen.FoleyGen` (``from_pretrained``, ``generation_params``,
``generate_results``), :func:`foleygen.io.probe` and the shared writer
:func:`foleygen.outputs.write.write_result` (the same files as ``foleygen generate``). A model is shared
by every request of the process; each request passes its own decoding settings (``params=``) and
leaves the model unchanged, so requests never see each other's settings and need no lock.

The work is split in two so that everything but the widgets is testable without a browser:

* :class:`DemoService` validates an upload, runs one generation and writes the results
  (plain Python; raises :class:`~foleygen.errors.FoleyGenError` subclasses);
* :func:`build_app` lays out the Gradio page and turns those errors into ``gr.Error`` pop-ups.

Safety: an upload is copied under a sanitised name into a per-request
:class:`tempfile.TemporaryDirectory` below a dedicated root, every path we create is checked to stay
inside that root, and results older than ``result_ttl_s`` are deleted at the next request (the page
moves each request's results into Gradio's cache at once: :mod:`foleygen.app_server`). Requests
queue, at most ``queue_size`` waiting (more get a 429 "busy"); ``workers`` generations run at once
(default one: a second would only halve the speed of both on a CPU).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foleygen.app_limits import IMAGE_FORMATS, MB, SETTING_RANGES, TEXT_FORMATS, check_setting, discard_refused_upload
from foleygen.errors import ConfigError, FoleyGenError, MediaError, one_line

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)

__all__ = ["DemoService", "DemoResult", "UploadError", "build_app", "launch", "safe_filename"]

# Models a visitor may pick. Only names, never paths typed in the browser: loading a checkpoint
# directory chosen by a visitor would let them read files on the server.
BUILTIN_MODELS = ("demo", "debug")
# Video codecs that browsers play inside .mp4. Anything else (HEVC from phones, MPEG-4 Part 2, ...) is
# re-encoded to H.264 by mux, or the visitor would get a result the page cannot play.
BROWSER_VIDEO_CODECS = {"h264", "vp9", "av1"}
# The alignment picture needs only thumbnails: read few, small frames.
PLOT_FPS = 25.0
PLOT_HEIGHT = 96
ProgressFn = Callable[..., Any]


class UploadError(MediaError):
    """An uploaded file that the demo refuses (too big, too long, not a video, unreadable)."""


@dataclass(frozen=True)
class _Request:
    """The settings of one generation, checked and converted."""

    model: str
    cfg: float
    top_k: int
    temperature: float
    seed: int
    length: float  # seconds of audio to generate
    suffix: str  # of the private copy of the upload


@dataclass(frozen=True)
class DemoResult:
    """What one generation produced (all files live in the same result directory)."""

    video: Path  # the upload with the new soundtrack (.mp4)
    audio: Path  # the soundtrack alone (.wav)
    plot: Path  # the alignment picture (.png)
    summary: str  # one Markdown paragraph for the page


def safe_filename(name: str, *, default: str = "video", max_len: int = 60) -> str:
    """A file *stem* that is safe to create anywhere: ASCII letters, digits, ``-``, ``_``.

    Drops any directory part (``../../etc/passwd`` -> ``passwd``; backslashes count as separators
    too), accents, control characters and leading dots, and never returns an empty or dot-only name.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:max_len].strip("_-")
    return stem or default


def _suffix_of(name: str) -> str:
    # The suffix kept on the private copy (purely cosmetic: PyAV probes by content); an upload named
    # .ogg may hold Theora video, so every media extension is kept.
    from foleygen.io.media_types import MEDIA_EXTENSIONS

    suffix = Path(name.replace("\\", "/")).suffix.lower()
    return suffix if suffix in MEDIA_EXTENSIONS else ".video"


def _inside(path: Path, root: Path) -> Path:
    """``path`` resolved, after checking that it lies inside ``root`` (guards every path we build)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise UploadError("refused a path outside the demo's working directory", path.name)
    return resolved


_MODELS: dict[str, Any] = {}  # name -> FoleyGen, shared by every request (settings travel per call)
_MODELS_LOCK = threading.Lock()  # held only while a model loads: two first requests load it once


def _cached_model(name: str) -> Any:
    with _MODELS_LOCK:
        if name not in _MODELS:
            from foleygen.api import FoleyGen

            log.info("loading model %s", name)
            _MODELS[name] = FoleyGen.from_pretrained(name)
        return _MODELS[name]


def _ui_defaults(name: str) -> dict[str, float]:
    """Initial slider values: the checkpoint's own decoding settings when the model is loaded already."""
    defaults = {"cfg": 3.0, "top_k": 250, "temperature": 1.0}
    params = getattr(_MODELS.get(name), "generation", None)
    if dataclasses.is_dataclass(params):
        defaults.update(cfg=float(params.cfg_coef), top_k=int(params.top_k), temperature=float(params.temperature))
    return defaults


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DemoService:
    """Validation, model cache, generation and result files for the web demo (no Gradio inside).

    Args:
        models: names a visitor may choose (the first is the default).
        work_root: the dedicated directory for uploads (``work/``) and results (``results/``);
            default ``$TMPDIR/foleygen-demo``.
        max_upload_mb / max_duration_s: limits checked on every upload (``MB`` = 2**20 bytes, as the
            browser counts, so that Gradio's limit and this one are the same number of bytes).
        result_ttl_s: results older than this are deleted at the next request.
    """

    def __init__(
        self,
        models: tuple[str, ...] | list[str] = BUILTIN_MODELS,
        *,
        work_root: str | Path | None = None,
        max_upload_mb: float = 50.0,
        max_duration_s: float = 30.0,
        result_ttl_s: float = 3600.0,
    ) -> None:
        if not models:
            raise ConfigError("the demo needs at least one model name")
        self.models = tuple(dict.fromkeys(models))
        self.root = Path(work_root or Path(tempfile.gettempdir()) / "foleygen-demo").resolve()
        self.work_dir = self.root / "work"
        self.results_dir = self.root / "results"
        for d in (self.work_dir, self.results_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.max_upload_mb = check_setting("max_upload_mb", max_upload_mb, low=0.001, high=1e6)
        self.max_upload_bytes = round(self.max_upload_mb * MB)
        self.max_duration_s = float(max_duration_s)
        self.result_ttl_s = float(result_ttl_s)
        # Ground-truth events of the example clips, keyed by the file's SHA-256: Gradio hands an example
        # back as a copy under another path, so content is the only reliable key.
        self._truth: dict[str, list[Any]] = {}

    # -- models -----------------------------------------------------------------------------------

    def load_model(self, name: str) -> Any:
        """The :class:`foleygen.FoleyGen` for ``name``, loaded on first use and then cached.

        The cache is per process, shared by every app and service in it: a model is loaded once.
        """
        if name not in self.models:
            raise ConfigError(f"unknown model {name!r}; this demo offers {', '.join(self.models)}")
        return _cached_model(name)

    # -- uploads ----------------------------------------------------------------------------------

    def validate_upload(self, path: str | Path | None, display_name: str | None = None) -> Any:
        """Check an uploaded file against the limits; return its :class:`foleygen.io.MediaInfo`.

        Errors name the file as the visitor called it, never the server's path.
        """
        from foleygen.io import probe

        if path is None or str(path) == "":
            raise UploadError("no video uploaded: drop a video file on the left first")
        path = Path(path)
        shown = display_name or path.name
        if not path.is_file():
            raise UploadError("the upload is missing on the server (it may have expired); upload it again", shown)
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise UploadError(f"file is {size / MB:.1f} MB; this demo accepts at most {self.max_upload_mb:g} MB", shown)
        if size == 0:
            raise UploadError("file is empty", shown)
        try:
            info = probe(path)
        except MediaError as err:
            raise UploadError(f"not a readable video ({err.message})", shown) from None
        if not info.has_video:
            raise UploadError("has no video stream (audio-only files and images are not supported)", shown)
        fmt = info.container.split(",")[0]
        if fmt.endswith("_pipe") or (fmt in IMAGE_FORMATS and (fmt == "image2" or info.num_frames <= 1)):
            raise UploadError("is a still image, not a video (images are not supported)", shown)
        if fmt in TEXT_FORMATS:
            raise UploadError("is a text file, not a video", shown)
        if not info.duration or info.duration <= 0:
            raise UploadError("video has no measurable duration", shown)
        if info.duration > self.max_duration_s + 0.05:  # tolerate container rounding
            raise UploadError(
                f"video is {info.duration:.1f} s long; this demo accepts at most {self.max_duration_s:g} s "
                "(trim it first, or run `foleygen generate` locally)",
                shown,
            )
        return info

    # -- examples ---------------------------------------------------------------------------------

    def prepare_examples(self, count: int = 2) -> list[Path]:
        """``count`` SynthFoley test clips to try the page with, made once under ``<root>/examples``.

        Their ground-truth impacts (time, class) are remembered, so the alignment picture of an example
        also shows where the sounds should be. Clips longer than ``max_duration_s`` are not offered.
        """
        if count <= 0:
            return []
        from foleygen.data.synthfoley import clip_is_complete, generate_clip, read_clip_meta, write_clip
        from foleygen.viz import Event

        ex_dir = self.root / "examples"
        paths = []
        for index in range(count):
            stem = f"synthfoley_test_{index}"
            if not clip_is_complete(ex_dir, stem, split="test", seed=0, index=index):
                write_clip(generate_clip("test", 0, index), ex_dir, stem)
            meta = read_clip_meta(ex_dir / f"{stem}.json")
            if meta["duration"] > self.max_duration_s:
                continue
            mp4 = ex_dir / f"{stem}.mp4"
            self._truth[_sha256(mp4)] = [
                Event(float(e["time"]), str(e["class"])) for e in meta["events"] if e.get("kind") == "impact"
            ]
            paths.append(mp4)
        return paths

    # -- housekeeping -----------------------------------------------------------------------------

    def prune_results(self, now: float | None = None) -> int:
        """Delete result directories older than ``result_ttl_s``; return how many were deleted."""
        now = time.time() if now is None else now
        removed = 0
        for d in self.results_dir.iterdir():
            try:
                if d.is_dir() and not d.is_symlink() and now - d.stat().st_mtime > self.result_ttl_s:
                    shutil.rmtree(d, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:  # another worker pruned it first
                continue
        return removed

    # -- generation -------------------------------------------------------------------------------

    def generate(
        self,
        video: str | Path | None,
        *,
        model: str | None = None,
        cfg: float = 3.0,
        top_k: int = 250,
        temperature: float = 1.0,
        seed: int = 0,
        duration: float | None = None,
        display_name: str | None = None,
        progress: ProgressFn | None = None,
    ) -> DemoResult:
        """Generate a soundtrack for one uploaded video; write the .mp4, .wav and .png results.

        Args:
            video: the uploaded file (anywhere; it is copied into a private temporary directory).
            model: one of :attr:`models` (default: the first).
            cfg / top_k / temperature: sampling settings (``top_k=0`` samples from all codes).
            seed: the same seed gives the same soundtrack.
            duration: seconds of audio, at most the video's length (default: the whole video).
            display_name: the file name the visitor uploaded (for messages and download names).
            progress: ``progress(fraction, desc=...)``, e.g. a ``gr.Progress``.
        """
        t0 = time.perf_counter()
        report = progress or (lambda *a, **k: None)
        model = model or self.models[0]
        shown = display_name or (Path(video).name if video else "upload")
        cfg, top_k = check_setting("cfg", cfg), check_setting("top_k", top_k)
        temperature, seed = check_setting("temperature", temperature), check_setting("seed", seed)
        duration = 0.0 if duration is None else check_setting("duration", duration, low=0.0, high=self.max_duration_s)
        info = self.validate_upload(video, shown)
        length = info.duration if not duration else min(duration, info.duration)
        stem = safe_filename(shown)
        self.prune_results()

        report(0.05, desc=f"loading model {model}")
        fg = self.load_model(model)
        out_dir = _inside(self.results_dir / uuid.uuid4().hex, self.results_dir)
        out_dir.mkdir()
        try:
            req = _Request(model, float(cfg), int(top_k), float(temperature), int(seed), length, _suffix_of(shown))
            video_path, audio_path, plot_path, sample_rate, truth = self._run(
                Path(video), info, out_dir, stem, fg, req, progress
            )
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)  # no half-written results left behind
            raise
        report(1.0, desc="done")
        elapsed = time.perf_counter() - t0
        summary = (
            f"**Done in {elapsed:.1f} s.** Model `{model}`, {length:.1f} s of audio at {sample_rate} Hz, "
            f"seed {seed}, cfg {cfg:g}, top-k {top_k}, temperature {temperature:g}."
        )
        if truth:
            summary += " Example clip: its true impacts are drawn in green on the picture."
        return DemoResult(video=video_path, audio=audio_path, plot=plot_path, summary=summary)

    def _run(
        self, video: Path, info: Any, out_dir: Path, stem: str, fg: Any, req: _Request, progress: ProgressFn | None
    ) -> tuple[Path, Path, Path, int, list[Any] | None]:
        """The work of :meth:`generate` once the upload is validated: results go to ``out_dir``."""
        from foleygen.io import FrameRequest
        from foleygen.outputs.write import PlotSpec, write_result

        report = progress or (lambda *a, **k: None)
        with tempfile.TemporaryDirectory(prefix="req-", dir=self.work_dir) as tmp:
            tmp_dir = Path(tmp)
            # A private copy under a name we chose: the generation never reads a visitor-named path.
            src = _inside(tmp_dir / f"input{req.suffix}", tmp_dir)
            shutil.copyfile(video, src)

            report(0.15, desc="generating audio")
            # This request's settings, on top of what the checkpoint chose for those the page does not
            # show (top_p, extend_stride); the shared model is not changed.
            params = fg.generation_params(
                duration=req.length, cfg_coef=req.cfg, top_k=req.top_k, temperature=req.temperature
            )
            # The alignment picture needs only thumbnails: few, small frames, cut in the generation's
            # own decoding pass.
            fps = min(PLOT_FPS, info.fps) if info.fps > 0 else PLOT_FPS
            width = max(2, round(PLOT_HEIGHT * info.width / max(info.height, 1)))
            thumbs = FrameRequest(fps, (PLOT_HEIGHT, width), "letterbox", req.length)
            # progress=True shows a tqdm bar, which gr.Progress(track_tqdm=True) mirrors on the page.
            [result] = fg.generate_results(
                [str(src)], seed=req.seed, progress=progress is not None, params=params, extra_frames=[thumbs]
            )
            sample_rate = int(result.sample_rate)

            report(0.75, desc="writing audio, video and the alignment picture")
            audio_path = _inside(out_dir / f"{stem}_foley.wav", out_dir)
            video_path = _inside(out_dir / f"{stem}_foley.mp4", out_dir)
            plot_path = _inside(out_dir / f"{stem}_alignment.png", out_dir)
            truth = self._truth.get(_sha256(src)) if self._truth else None
            spec = PlotSpec(
                result.extra_frames[0],
                fps,
                title=f"{stem}: model {req.model}, seed {req.seed}",
                events=[e for e in truth if e.time <= req.length] if truth else None,
            )
            playable = info.video_codec in BROWSER_VIDEO_CODECS
            write_result(
                result,
                audio=audio_path,
                video=video_path,
                plot=plot_path,
                plot_spec=spec,
                reencode_video=None if playable else True,
            )
        return video_path, audio_path, plot_path, sample_rate, truth


# --------------------------------------------------------------------------------------------------
# The Gradio page
# --------------------------------------------------------------------------------------------------

DESCRIPTION = """\
# FoleyGen: a soundtrack for your video
Drop a short video, pick the settings, press **Generate soundtrack**. You get the video back with the
generated audio, the audio alone, and a picture that shows whether the sounds (blue lines) land on the
visible actions (orange: visual motion peaks). Limits: {max_mb:g} MB and {max_s:g} s per video (no images);
requests queue ({workers} at a time, at most {queue} waiting; your place shows on the right).
**Live:** [use your camera instead](/live) (the soundtrack follows it while you watch).
"""


def _upload_name(video: Any) -> str | None:
    # Gradio stores uploads as <cache>/<hash>/<original name>: the last part is what the visitor named it.
    return None if not video else Path(str(video)).name


def _examples_or_none(service: DemoService, count: int) -> list[Path]:
    # Examples are a convenience: a page without them beats no page at all.
    try:
        return service.prepare_examples(count)
    except (FoleyGenError, ImportError, OSError) as err:
        log.warning("no example clips: %s", err)
        return []


def _public_message(err: FoleyGenError, service: DemoService, video: Any) -> str:
    """The one-line error for the visitor: named after their file, without the server's paths."""
    name = _upload_name(video) or "upload"
    # Upload errors already name the visitor's file; errors from deeper down name our working files
    # (absolute paths), which mean nothing to the visitor and should not be revealed.
    text = f"{name}: {err.message}" if err.path and os.path.isabs(err.path) else str(err)
    return text.replace(str(service.root), "…")


def _refuse(err: FoleyGenError, service: DemoService, video: Any, title: str) -> gr.Error:
    """The visitor's one-line toast for ``err``, the same line in the server log, and a refused upload
    removed from Gradio's cache. No traceback: a visitor's bad input is not a server fault."""
    import gradio as gr

    message = _public_message(err, service, video)
    log.warning("refused a request: %s", message)
    if isinstance(err, UploadError):
        discard_refused_upload(video)
    return gr.Error(message, title=title, print_exception=False)


def make_upload_check(service: DemoService) -> Callable[[str | None], None]:
    """Checks an upload as soon as it arrives, so visitors learn about the limits before they wait."""

    def check_upload(video: str | None) -> None:
        if not video:  # the upload box was cleared
            return
        try:
            service.validate_upload(video, _upload_name(video))
        except FoleyGenError as err:
            raise _refuse(err, service, video, "Cannot use this file") from None

    return check_upload


def make_handler(
    service: DemoService, publish: Callable[[DemoResult], DemoResult] | None = None
) -> Callable[..., tuple[str, str, str, str, str]]:
    """The click handler: service errors become ``gr.Error`` messages, results become file paths.

    ``publish`` moves a result where it is served from (the page: Gradio's cache) and returns it there.
    """
    import gradio as gr

    def generate_soundtrack(
        video: str | None,
        model: str,
        cfg: float,
        top_k: float,
        temperature: float,
        seed: float,
        duration: float,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, str, str, str, str]:
        try:
            # The service checks every setting (a client of the API can send anything, NaN included).
            result = service.generate(
                video,
                model=model,
                cfg=cfg,
                top_k=top_k,
                temperature=temperature,
                seed=0 if seed is None else seed,
                duration=duration,
                display_name=_upload_name(video),
                progress=progress,
            )
            result = publish(result) if publish else result
        except FoleyGenError as err:
            raise _refuse(err, service, video, "Cannot generate") from None
        except Exception as err:  # a bug: one line in the log (the traceback with FOLEYGEN_DEBUG=1)
            log.error("generation failed: %s", one_line(err, _upload_name(video)))
            text = " ".join(f"{type(err).__name__}: {err}".split())
            raise gr.Error(f"generation failed: {text}", title="Internal error", print_exception=False) from None
        return str(result.video), str(result.video), str(result.audio), str(result.plot), result.summary

    return generate_soundtrack


def build_app(
    model_name: str = "demo",
    *,
    max_upload_mb: float = 50.0,
    max_duration_s: float = 30.0,
    work_root: str | Path | None = None,
    examples: int = 2,
    service: DemoService | None = None,
    queue_size: int = 32,
    workers: int = 1,
) -> gr.Blocks:
    """The demo page as a ``gr.Blocks`` with its queue configured (call ``.launch()`` or use :func:`launch`).

    ``model_name`` is the default choice; the built-in ``demo`` and ``debug`` models are offered too.
    ``examples``: how many SynthFoley clips to offer as one-click examples (0: none).
    ``queue_size``: requests that may wait (more are refused as busy); ``workers``: generations at once.
    """
    import gradio as gr

    from foleygen.app_server import UPLOAD_CHECK_GROUP, publish_results

    queue_size, workers = check_setting("queue_size", queue_size), check_setting("workers", workers)

    service = service or DemoService(
        (model_name, *BUILTIN_MODELS), work_root=work_root, max_upload_mb=max_upload_mb, max_duration_s=max_duration_s
    )
    max_s = service.max_duration_s
    start = _ui_defaults(service.models[0])
    with gr.Blocks(title="FoleyGen demo", analytics_enabled=False, delete_cache=(1800, 3600)) as app:
        gr.Markdown(DESCRIPTION.format(max_mb=service.max_upload_mb, max_s=max_s, workers=workers, queue=queue_size))
        with gr.Row():
            with gr.Column():
                video_in = gr.Video(
                    label="Your video", sources=["upload"], include_audio=True, height=360, elem_id="input-video"
                )
                with gr.Accordion("Generation settings", open=True):
                    model = gr.Dropdown(
                        list(service.models),
                        value=service.models[0],
                        label="Model",
                        info="debug = tiny random model (noise, for testing)",
                        elem_id="model",
                    )
                    duration = gr.Slider(
                        0,
                        max_s,
                        value=0,
                        step=0.5,
                        label="Duration (s)",
                        info="0 = the whole video",
                        elem_id="duration",
                    )
                    cfg = gr.Slider(
                        *SETTING_RANGES["cfg"][:2],
                        value=start["cfg"],
                        step=0.5,
                        label="Guidance (cfg)",
                        info="higher follows the video more closely",
                        elem_id="cfg",
                    )
                    top_k = gr.Slider(
                        *SETTING_RANGES["top_k"][:2],
                        value=start["top_k"],
                        step=1,
                        label="Top-k",
                        info="0 = no top-k filter",
                        elem_id="top-k",
                    )
                    temperature = gr.Slider(
                        *SETTING_RANGES["temperature"][:2],
                        value=start["temperature"],
                        step=0.05,
                        label="Temperature",
                        info="0 = always the most likely code",
                        elem_id="temperature",
                    )
                    seed = gr.Number(
                        value=0,
                        precision=0,
                        minimum=SETTING_RANGES["seed"][0],
                        maximum=SETTING_RANGES["seed"][1],
                        label="Seed",
                        elem_id="seed",
                    )
                button = gr.Button("Generate soundtrack", variant="primary", elem_id="generate-btn")
                example_paths = _examples_or_none(service, examples)
                if example_paths:
                    gr.Examples(
                        [[str(p)] for p in example_paths],
                        inputs=[video_in],
                        label="No video at hand? Try a SynthFoley clip (its true impacts are known)",
                    )
            with gr.Column():
                video_out = gr.Video(
                    label="With the new soundtrack", interactive=False, height=360, elem_id="output-video"
                )
                summary = gr.Markdown(elem_id="summary")
                with gr.Row():
                    video_file = gr.File(label="Download video (.mp4)", interactive=False, elem_id="video-file")
                    audio_file = gr.File(label="Download audio (.wav)", interactive=False, elem_id="audio-file")
        # Full width: the picture is wide (one time axis for frames, spectrogram and events).
        gr.Markdown(
            "**Alignment.** Top: frames at their times. Middle: the soundtrack's mel spectrogram with the "
            "detected audio onsets (blue) and visual motion peaks (orange, dashed). Bottom: the same events "
            "on one line each; AV-Align in the title is the share of them that coincide within one frame."
        )
        plot = gr.Image(
            label="Alignment picture", show_label=False, type="filepath", interactive=False, elem_id="alignment-plot"
        )
        # Its own unlimited concurrency group: a probe takes milliseconds and must not wait behind running
        # generations. (Queued all the same: Gradio shows gr.Error toasts only for queued events.)
        video_in.upload(
            make_upload_check(service),
            inputs=[video_in],
            outputs=None,
            concurrency_limit=None,
            concurrency_id=UPLOAD_CHECK_GROUP,
            show_progress="hidden",
        )

        # Results go straight into Gradio's cache (served from there, deleted on its schedule), so the
        # demo's own folders are empty again when a request ends.
        def publish(result: DemoResult) -> DemoResult:
            return publish_results(result, video_out.GRADIO_CACHE, service.results_dir)

        button.click(
            make_handler(service, publish),
            inputs=[video_in, model, cfg, top_k, temperature, seed, duration],
            outputs=[video_out, video_file, audio_file, plot, summary],
            api_name="generate",
            concurrency_limit=workers,
        )
    # `workers` generations at a time; waiting visitors see their place in the queue.
    app.queue(default_concurrency_limit=1, max_size=queue_size)
    app.foleygen_service = service  # for launch() and tests
    app.foleygen_queue_size = queue_size
    return app


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    model: str = "demo",
    *,
    share: bool = False,
    max_upload_mb: float = 50.0,
    max_duration_s: float = 30.0,
    work_root: str | Path | None = None,
    block: bool = True,
    quiet: bool = False,
    examples: int = 2,
    queue_size: int = 32,
    workers: int = 1,
) -> gr.Blocks:
    """Build the app, load ``model`` once, and serve it on ``host:port``.

    Blocks until interrupted unless ``block=False`` (then the server runs in threads; stop it with
    ``app.close()``). ``quiet`` silences Gradio's start-up lines. At shutdown the work folders are
    emptied and this app's uploads and results deleted (:func:`foleygen.app_server.cleanup_lifespan`).
    """
    # No phoning home: the demo must work offline and must not report visitors anywhere.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Load first: fail before serving, make the first request fast, and start the sliders at the
    # checkpoint's own decoding settings.
    _cached_model(model)
    limits = {"max_upload_mb": max_upload_mb, "max_duration_s": max_duration_s, "queue_size": queue_size}
    app = build_app(model, work_root=work_root, examples=examples, workers=workers, **limits)
    service: DemoService = app.foleygen_service
    from starlette.middleware import Middleware

    from foleygen.app_server import DemoGuard, cleanup_lifespan, upload_check_ids
    from foleygen.web_live import LivePage

    # The live page (/live) runs the default model on the same server; its routes go in first.
    live = LivePage(lambda: service.load_model(service.models[0]), model_name=service.models[0])
    limits = {"queue_size": app.foleygen_queue_size, "max_upload_mb": service.max_upload_mb}
    guard = Middleware(DemoGuard, **limits, upload_checks=upload_check_ids(app))
    app.launch(
        app_kwargs={
            "routes": live.routes(),
            "middleware": [guard],
            "lifespan": cleanup_lifespan(service, app.GRADIO_CACHE),
        },
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=service.max_upload_bytes,  # bytes: the very limit the app checks
        allowed_paths=[str(service.root / "examples")],  # results are served from Gradio's cache
        ssr_mode=False,
        show_error=True,
        prevent_thread_lock=not block,
        quiet=quiet,
    )
    return app
