"""``foleygen rate demo``: a ready-made study over SynthFoley test clips, to try the tool at once.

Systems: the shipped model (``demo``) and, when ``ABLATION/<variant>/final`` holds a trained model
(``scripts/run_ablation.py``'s layout), the ``full``, ``causal`` and ``frame_specific`` ablations.
The hidden reference is each clip's true soundtrack; the anchor is ``shuffled``: the shipped model's
audio for another clip, i.e. the shipped model given the wrong video (the eval's shuffled floor).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

from foleygen.errors import ConfigError, DataError
from foleygen.rate.study import StudyConfig, SystemSpec, create_study, parse_anchor

ABLATION_VARIANTS = ("full", "causal", "frame_specific")


def ablation_models(root: Path) -> dict[str, Path]:
    """``{variant: model dir}`` for the ablation models present under ``root`` (maybe none)."""
    return {v: root / v / "final" for v in ABLATION_VARIANTS if (root / v / "final" / "config.json").is_file()}


def build_demo(
    study: str | Path,
    clips: int = 3,
    duration: float = 2.0,
    ablation: str | Path = "runs/ablation",
    raters: int = 2,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Make the demo study in ``study``; returns the names of the systems it compares.

    Raises:
        ConfigError: fewer than 2 clips.
        DataError: ``study`` already holds something (checked before any clip is generated).
    """
    from foleygen.api import FoleyGen
    from foleygen.data.synthfoley import generate_clip, write_clip
    from foleygen.data.synthfoley.config import SynthFoleyConfig
    from foleygen.io import write_audio

    study = Path(study)
    if clips < 2:
        raise ConfigError("the demo needs at least 2 clips (the shuffled anchor swaps soundtracks between them)")
    # create_study checks this too, but only after every model has generated: say it before the work
    if study.exists() and (not study.is_dir() or any(study.iterdir())):
        raise DataError("already exists and is not empty; choose a new study folder", study)
    sources = study.parent / f".{study.name}.demo-sources"
    shutil.rmtree(sources, ignore_errors=True)
    try:
        videos = sources / "videos"
        config = SynthFoleyConfig(duration=duration)
        paths = [write_clip(generate_clip("test", seed, i, config), videos, f"{i:05d}") for i in range(clips)]
        log(f"wrote {clips} SynthFoley test clips of {duration:g} s")
        models = {"demo": "demo", **{k: str(v) for k, v in ablation_models(Path(ablation)).items()}}
        systems = []
        for name, where in models.items():
            model = FoleyGen.from_pretrained(where)
            folder = sources / name
            folder.mkdir(parents=True)
            for path, wav in zip(paths, model.generate_list([str(p) for p in paths], seed=seed), strict=True):
                write_audio(folder / f"{path.stem}.wav", wav, model.sample_rate)
            systems.append(SystemSpec(name, "system", folder))
            log(f"generated the soundtracks of {name}")
        names = [s.name for s in systems]
        pairs = list(combinations(names, 2)) or [("demo", "original")]
        systems += [SystemSpec("original", "reference", own_audio=True), parse_anchor("shuffled", "demo")]
        study_config = StudyConfig(
            videos=videos,
            systems=systems,
            ab_pairs=pairs,
            raters=[f"rater{i + 1}" for i in range(raters)],
            seed=seed,
            title="FoleyGen demo listening test",
        )
        create_study(study, study_config, log=log)
    finally:
        shutil.rmtree(sources, ignore_errors=True)
    return names
