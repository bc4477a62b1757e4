"""Setting up a study: which clips, which questions, which order for each rater.

A study pairs every video of a folder with each system's audio for it (matched by file stem:
``clip.mp4`` takes ``clip.wav``, ``clip.flac``, ``clip.mp4``... or ``foleygen generate``'s
``clip_foley.wav`` from each system folder) and pre-muxes each pair into ``STUDY/media`` with
:func:`foleygen.io.mux` (the video stream copied, the system's audio as AAC).

Besides the systems under test a study may hold a **hidden reference** (e.g. the videos' own
soundtracks) and **known-bad anchors** built from a source system: ``shuffled`` (each video gets
another video's audio) and ``delayed:SECONDS`` (the audio arrives late). Raters never see which is
which; the report uses them as attention checks (see :mod:`foleygen.rate.report`).

The whole study is built in a hidden folder beside ``STUDY`` and renamed to ``STUDY`` only when
complete, so an interrupted ``create`` never leaves a half-made study under the final name.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from foleygen.atomic import atomic_dir
from foleygen.errors import ConfigError, DataError, FoleyGenError
from foleygen.rate.store import DB_NAME, MEDIA_DIR, Store, new_secret

#: MOS questions asked about every clip unless a study says otherwise: (key, wording).
DEFAULT_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("quality", "How good is the sound itself: clean, natural, free of glitches?"),
    ("relevance", "How well do the sounds fit what you see (the right kinds of sounds)?"),
    ("sync", "How well are the sounds timed with the events in the video?"),
)
DEFAULT_AB_QUESTION = "Which soundtrack fits the video better?"
SCALE = ("Bad", "Poor", "Fair", "Good", "Excellent")  # ITU-T P.800 absolute category rating, 1..5
ANCHOR_KINDS = ("shuffled", "delayed")
#: video codecs every current browser plays in MP4; others (e.g. MPEG-4 part 2) are re-encoded to H.264
BROWSER_VIDEO_CODECS = frozenset({"h264", "vp9", "av1"})


@dataclass
class SystemSpec:
    """One soundtrack source. ``role``: system | reference | anchor.

    ``folder`` holds the audio files (systems, references); a reference may instead take
    the videos' own soundtracks when ``own_audio``. Anchors have ``kind`` (shuffled | delayed), ``source`` (the system
    whose audio they transform) and, for ``delayed``, ``delay`` seconds.
    """

    name: str
    role: str = "system"
    folder: Path | None = None
    kind: str | None = None
    source: str | None = None
    delay: float = 0.5
    own_audio: bool = False


@dataclass
class StudyConfig:
    """Everything ``foleygen rate create`` needs (from flags or a YAML file; see docs/rate.md)."""

    videos: Path
    systems: list[SystemSpec]
    questions: list[tuple[str, str]] = field(default_factory=lambda: list(DEFAULT_QUESTIONS))
    mos: bool = True
    ab_pairs: list[tuple[str, str]] = field(default_factory=list)
    ab_question: str = DEFAULT_AB_QUESTION
    ab_checks: int = 2
    raters: list[str] = field(default_factory=list)
    seed: int = 0
    title: str = "Listening test"
    instructions: str = (
        "Watch each video with its soundtrack (headphones, please), then answer. You can replay as often as "
        "you like. Keys: 1-5 rate the focused question, Tab/arrows move, Enter submits, Space plays or pauses."
    )
    check_questions: list[str] = field(default_factory=lambda: ["relevance", "sync"])
    min_pass: float = 0.75

    def __post_init__(self) -> None:
        names = [s.name for s in self.systems]
        if len(set(names)) != len(names):
            raise ConfigError(f"system names must be unique, got {names}")
        for s in self.systems:
            if not s.name or not all(ch.isalnum() or ch in "-_." for ch in s.name):
                raise ConfigError(f"system name {s.name!r}: use letters, digits, '-', '_' or '.'")
            if s.role == "anchor":
                if s.kind not in ANCHOR_KINDS:
                    raise ConfigError(f"anchor {s.name!r}: kind must be one of {ANCHOR_KINDS}, got {s.kind!r}")
                if s.source not in names or s.source == s.name:
                    raise ConfigError(f"anchor {s.name!r}: source {s.source!r} is not another system of the study")
            elif s.role in ("system", "reference"):
                if s.folder is None and not s.own_audio:
                    raise ConfigError(f"{s.role} {s.name!r} needs a folder")
            else:
                raise ConfigError(f"{s.name!r}: role must be system, reference or anchor, got {s.role!r}")
        if not any(s.role == "system" for s in self.systems):
            raise ConfigError("a study needs at least one system (--system NAME=DIR)")
        keys = [k for k, _ in self.questions]
        if len(set(keys)) != len(keys) or not all(k.isidentifier() for k in keys):
            raise ConfigError(f"question keys must be unique identifiers, got {keys}")
        for a, b in self.ab_pairs:
            if a not in names or b not in names or a == b:
                raise ConfigError(f"A/B pair {a},{b}: both must be different systems of the study")
        if not self.mos and not self.ab_pairs:
            raise ConfigError("nothing to rate: enable MOS or give A/B pairs")
        if not 0.0 <= self.min_pass <= 1.0:
            raise ConfigError(f"min_pass must be in [0, 1], got {self.min_pass}")

    def anchors(self) -> list[SystemSpec]:
        return [s for s in self.systems if s.role == "anchor"]

    def reference(self) -> SystemSpec | None:
        return next((s for s in self.systems if s.role == "reference"), None)


def parse_anchor(text: str, default_source: str | None) -> SystemSpec:
    """``shuffled``, ``delayed:0.5``, optionally ``@SOURCE`` (``shuffled@demo``) -> an anchor spec."""
    spec, _, source = text.partition("@")
    kind, _, arg = spec.partition(":")
    source = source or default_source
    if kind == "delayed":
        try:
            delay = float(arg or 0.5)
        except ValueError:
            raise ConfigError(f"anchor {text!r}: delay must be seconds, e.g. delayed:0.5") from None
        if delay <= 0:
            raise ConfigError(f"anchor {text!r}: delay must be positive")
        return SystemSpec(f"delayed{delay:g}", "anchor", kind="delayed", source=source, delay=delay)
    if kind == "shuffled" and not arg:
        return SystemSpec("shuffled", "anchor", kind="shuffled", source=source)
    raise ConfigError(f"anchor {text!r}: use shuffled or delayed:SECONDS (optionally @SOURCE)")


def config_from_yaml(path: str | os.PathLike[str]) -> StudyConfig:
    """A :class:`StudyConfig` from a YAML file; relative folders are relative to the file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read study YAML ({str(err).splitlines()[0]})", path) from None
    if not isinstance(data, dict):
        raise ConfigError("a study YAML must be a mapping", path)
    base = path.parent
    known = {"videos", "systems", "reference", "anchors", "questions", "mos", "ab", "ab_question", "ab_checks",
             "raters", "seed", "title", "instructions", "checks"}  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown keys {unknown} (known: {sorted(known)})", path)
    if "videos" not in data or "systems" not in data:
        raise ConfigError("needs 'videos' and 'systems'", path)
    systems = [SystemSpec(str(n), "system", base / str(d)) for n, d in dict(data["systems"]).items()]
    ref = data.get("reference")
    if ref is not None:
        name, folder = next(iter(dict(ref).items())) if isinstance(ref, dict) else ("reference", ref)
        own = folder == "videos"  # the videos' own soundtracks
        systems.append(SystemSpec(str(name), "reference", None if own else base / str(folder), own_audio=own))
    default_source = systems[-1].name if ref is not None else systems[0].name
    systems += [parse_anchor(str(a), default_source) for a in data.get("anchors") or []]
    questions = list(DEFAULT_QUESTIONS)
    if data.get("questions") is not None:
        questions = [(str(k), str(v)) for k, v in dict(data["questions"]).items()]
    ab = data.get("ab") or []
    names = [s.name for s in systems if s.role == "system"]
    pairs = list(combinations(names, 2)) if ab == "all" else [tuple(str(x) for x in p) for p in ab]
    checks = dict(data.get("checks") or {})
    try:
        return StudyConfig(
            videos=base / str(data["videos"]),
            systems=systems,
            questions=questions,
            mos=bool(data.get("mos", True)),
            ab_pairs=pairs,
            ab_question=str(data.get("ab_question", DEFAULT_AB_QUESTION)),
            ab_checks=int(data.get("ab_checks", 2)),
            raters=raters_arg(data.get("raters", [])),
            seed=int(data.get("seed", 0)),
            title=str(data.get("title", "Listening test")),
            **({"instructions": str(data["instructions"])} if "instructions" in data else {}),
            check_questions=[str(q) for q in checks.get("questions", ["relevance", "sync"])],
            min_pass=float(checks.get("min_pass", 0.75)),
        )
    except ConfigError as err:
        raise ConfigError(err.message, path) from None


def raters_arg(value: Any) -> list[str]:
    """Rater names from a count (``3`` -> rater1..rater3) or a list of names."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return [f"rater{i + 1}" for i in range(int(value))]
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    names = [str(v) for v in value]
    if len(set(names)) != len(names):
        raise ConfigError(f"rater names must be unique, got {names}")
    return names


def find_audio(folder: Path, stem: str) -> Path | None:
    """The file in ``folder`` holding the audio for video ``stem`` (``stem.*`` or ``stem_foley.*``)."""
    from foleygen.eval.pairing import list_media

    found = list_media(folder)
    return found.get(stem) or found.get(f"{stem}_foley")


def _anchor_audio(spec: SystemSpec, stems: list[str], audio: dict[str, tuple[Any, int]], seed: int) -> dict:
    """The anchor's audio per stem, from ``audio`` (the source's ``{stem: (wav [C, S], rate)}``)."""
    import torch

    if spec.kind == "delayed":
        out = {}
        for stem in stems:
            wav, sr = audio[stem]
            pad = torch.zeros(wav.shape[0], round(spec.delay * sr), dtype=wav.dtype)
            out[stem] = (torch.cat([pad, wav], dim=1)[:, : wav.shape[1]], sr)
        return out
    # shuffled: a random derangement, so that no video keeps its own audio
    order = list(stems)
    random.Random(f"shuffled-{seed}").shuffle(order)
    return {order[i]: audio[order[(i + 1) % len(order)]] for i in range(len(order))}


def create_study(study: str | os.PathLike[str], config: StudyConfig, log: Callable[[str], None] = print) -> int:
    """Build the study folder ``study``; returns the number of videos skipped (each reported via ``log``).

    Raises:
        DataError: ``study`` already holds something, no video could be used, or too few for ``shuffled``.
    """
    from foleygen.io import mux, probe, read_audio
    from foleygen.io.media_types import VIDEO_EXTENSIONS, describe_extensions

    study = Path(study)
    if study.exists() and (not study.is_dir() or any(study.iterdir())):
        raise DataError("already exists and is not empty; choose a new study folder", study)
    if not config.videos.is_dir():
        raise DataError("videos folder not found", config.videos)
    videos = sorted(p for p in config.videos.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise DataError(f"no videos ({describe_extensions(VIDEO_EXTENSIONS)})", config.videos)
    sources = [s for s in config.systems if s.role != "anchor"]
    usable: list[tuple[Path, Any, dict[str, tuple[Any, int]]]] = []
    skipped = 0
    for video in videos:
        try:
            info = probe(video)
            if not info.has_video:
                raise DataError("no video stream", video)
            tracks = {}
            for s in sources:
                path = video if s.own_audio else find_audio(s.folder, video.stem)
                if path is None:
                    raise DataError(f"system {s.name!r} has no {video.stem}.* or {video.stem}_foley.* in {s.folder}")
                a = probe(path)
                if not a.has_audio:
                    raise DataError(f"no audio stream (system {s.name!r})", path)
                wav = read_audio(path, a.audio_sample_rate, min(a.audio_channels, 2), duration=info.duration)
                tracks[s.name] = (wav, a.audio_sample_rate)
        except FoleyGenError as err:
            log(f"skipped {video.name}: {err}")
            skipped += 1
            continue
        usable.append((video, info, tracks))
    if not usable:
        raise DataError("no video could be paired with every system's audio", config.videos)
    stems = [v.stem for v, _, _ in usable]
    if any(s.kind == "shuffled" for s in config.anchors()) and len(stems) < 2:
        raise DataError("a shuffled anchor needs at least two usable videos", config.videos)
    for spec in config.anchors():
        built = _anchor_audio(spec, stems, {v.stem: t[spec.source] for v, _, t in usable}, config.seed)
        for video, _, tracks in usable:
            tracks[spec.name] = built[video.stem]

    study.parent.mkdir(parents=True, exist_ok=True)
    # Built under a temporary name and renamed into place (an empty folder of that name is replaced).
    with atomic_dir(study) as tmp:
        (tmp / MEDIA_DIR).mkdir()
        store = Store.create(tmp / DB_NAME, _meta(config))
        system_ids = {s.name: store.add_system(s.name, s.role) for s in config.systems}
        media: dict[tuple[str, str], int] = {}
        for vi, (video, info, tracks) in enumerate(usable):
            video_id = store.add_video(video.stem, info.duration)
            reencode = True if info.video_codec not in BROWSER_VIDEO_CODECS else None
            for si, s in enumerate(config.systems):
                file = f"{vi:04d}-{si:02d}.mp4"
                wav, sr = tracks[s.name]
                mux(video, wav, sr, tmp / MEDIA_DIR / file, reencode_video=reencode)
                media[video.stem, s.name] = store.add_media(video_id, system_ids[s.name], file)
            log(f"muxed {video.name} with {len(config.systems)} soundtracks")
        _add_trials(store, config, stems, media)
        for name in config.raters:
            add_rater(store, name)
        store.close()
    return skipped


def _meta(config: StudyConfig) -> dict[str, Any]:
    return {
        "title": config.title,
        "instructions": config.instructions,
        "questions": [{"key": k, "text": t} for k, t in config.questions] if config.mos else [],
        "scale": list(SCALE),
        "ab_question": config.ab_question,
        "checks": {"questions": config.check_questions, "min_pass": config.min_pass},
        "seed": config.seed,
        "admin_secret": new_secret(),
    }


def _add_trials(store: Store, config: StudyConfig, stems: list[str], media: dict[tuple[str, str], int]) -> None:
    if config.mos:
        for stem in stems:
            for s in config.systems:
                store.add_trial("mos", media[stem, s.name])
    for a, b in config.ab_pairs:
        for stem in stems:
            store.add_trial("ab", media[stem, a], media[stem, b])
    ref, anchors = config.reference(), config.anchors()
    if config.ab_pairs and ref is not None and anchors:
        # reference-vs-anchor A/B trials: the answer is known, so they test attention
        for i, stem in enumerate(stems[: max(0, config.ab_checks)]):
            store.add_trial("ab", media[stem, ref.name], media[stem, anchors[i % len(anchors)].name], is_check=True)


def trial_order(store: Store, rater_index: int, seed: int) -> list[tuple[int, bool]]:
    """The balanced, randomised order of all trials for the ``rater_index``-th rater.

    MOS trials come in rounds: in round ``r`` rater ``k`` hears video ``v`` from system
    ``(k + v + r) mod S`` (a Latin square), so every round holds each video once and every system
    about equally often, and over any ``S`` consecutive raters each (video, system) clip is heard in
    each round exactly once; the order inside a round is shuffled per rater, and a video never plays
    twice in a row across a round boundary when there are two or more videos. A/B trials follow, shuffled,
    with the sides swapped for every other trial (alternating between consecutive raters).

    Returns:
        ``[(trial_id, swapped)]`` in presentation order.
    """
    rng = random.Random(f"order-{seed}-{rater_index}")
    rows = store.query(
        """SELECT t.id, t.kind, m.video_id, m.system_id FROM trials t JOIN media m ON m.id = t.media_a
           ORDER BY t.id"""
    )
    mos = [r for r in rows if r["kind"] == "mos"]
    video_ids = sorted({r["video_id"] for r in mos})
    system_ids = sorted({r["system_id"] for r in mos})
    by_clip = {(r["video_id"], r["system_id"]): r["id"] for r in mos}
    order: list[tuple[int, bool]] = []
    n_sys = len(system_ids)
    last_video = None
    for r in range(n_sys):
        block = [(v, system_ids[(rater_index + vi + r) % n_sys]) for vi, v in enumerate(video_ids)]
        rng.shuffle(block)
        if len(block) > 1 and block[0][0] == last_video:
            block[0], block[1] = block[1], block[0]
        order += [(by_clip[clip], False) for clip in block]
        last_video = block[-1][0] if block else last_video
    ab = [r["id"] for r in rows if r["kind"] == "ab"]
    swaps = {t: bool((rater_index + j) % 2) for j, t in enumerate(ab)}
    rng.shuffle(ab)
    order += [(t, swaps[t]) for t in ab]
    return order


def add_rater(store: Store, name: str) -> str:
    """Add a rater with the next balanced order; returns their token."""
    if not name or len(name) > 80 or not all(ch.isalnum() or ch in "-_.@ " for ch in name):
        raise ConfigError(f"rater name {name!r}: use up to 80 letters, digits, spaces, '-', '_', '.', '@'")
    index = len(store.raters())
    return store.add_rater(name, trial_order(store, index, int(store.meta().get("seed", 0))))


def links(store: Store, base_url: str) -> list[tuple[str, str]]:
    """``(rater name, personal URL)`` for every rater, plus ``("admin", admin URL)`` first."""
    base = base_url.rstrip("/")
    out = [("admin", f"{base}/admin/{store.meta()['admin_secret']}")]
    return out + [(r["name"], f"{base}/r/{r['token']}") for r in store.raters()]
