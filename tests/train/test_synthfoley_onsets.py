import json

import numpy as np
import pytest
import torch
from torch import nn

from foleygen.data.cache import CacheReader, ShardWriter, init_cache, make_fingerprint
from foleygen.errors import ConfigError
from foleygen.train.lm_task import LMTask, masked_codebook_metrics
from foleygen.train.recipes.synthfoley import OnsetLossConfig
from foleygen.train.recipes.synthfoley.onset_data import (
    SIDECAR,
    compute_onsets,
    load_clip_impacts,
    load_or_compute_onsets,
    onset_class_targets,
    onset_frame_targets,
    onset_frame_weights,
)

SR = 16000
RATE = 50.0
CODEC = {"name": "clicks", "sample_rate": SR, "frame_rate": RATE, "num_codebooks": 2, "cardinality": 16, "channels": 1}
VISUAL = {"kind": "clip", "path": "m", "fps": 10.0, "input_fps": 10.0, "dim": 8, "image_size": 16, "trainable": False}
#: audio frames where each clip's "sound" starts (code 7 in codebook 0 there)
CLICKS = {"c0": [10, 60], "c1": [25], "c2": []}


def click_decode(codes: torch.Tensor) -> torch.Tensor:
    """A stand-in codec: a decaying noise burst starts at every frame whose codebook-0 code is 7."""
    B, _, T = codes.shape
    hop = int(SR / RATE)
    wav = torch.zeros(B, 1, T * hop)
    burst = torch.randn(hop * 4, generator=torch.Generator().manual_seed(0)) * torch.exp(-torch.arange(hop * 4) / 80.0)
    for b in range(B):
        for t in torch.nonzero(codes[b, 0] == 7).flatten().tolist():
            seg = wav[b, 0, t * hop : t * hop + len(burst)]
            seg += 0.5 * burst[: len(seg)]
    return wav


class ClickCodec(nn.Module):
    sample_rate = SR
    frame_rate = RATE
    num_codebooks = 2
    cardinality = 16

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return click_decode(codes)


@pytest.fixture
def click_cache(tmp_path):
    """3 clips of 2 s (100 audio frames) with bursts at CLICKS; c2 is the validation clip."""
    init_cache(tmp_path / "c", make_fingerprint(codec=CODEC, visual=VISUAL, duration=2.0))
    w = ShardWriter(tmp_path / "c", 0, 1)
    for name, frames in CLICKS.items():
        codes = np.zeros((2, 100), dtype=np.int64)
        codes[0, frames] = 7
        feats = np.zeros((20, 8), dtype=np.float32)
        w.add(name, codes, feats, split="val" if name == "c2" else "train", label=None, seconds=2.0)
    w.finalize()
    return tmp_path / "c"


def test_frame_weights_cover_the_window_around_each_onset():
    w = onset_frame_weights([[0.5], []], [0.0, 0.0], 50, 50.0, weight=3.0, before=0.04, after=0.06)
    assert w.shape == (2, 50)
    # onset at frame 25: frames 23, 24 (40 ms before) and 25, 26, 27 (60 ms after) weigh 4
    assert torch.nonzero(w[0] == 4.0).flatten().tolist() == [23, 24, 25, 26, 27]
    assert bool((w[0][w[0] != 4.0] == 1.0).all())
    assert bool((w[1] == 1.0).all())


def test_frame_weights_follow_the_crop_and_clip_at_its_edges():
    # the crop starts at 0.4 s: the onset at 0.5 s is crop frame 5; one at 0.41 s hangs over the start
    w = onset_frame_weights([[0.5], [0.41], [5.0]], [0.4, 0.4, 0.4], 20, 50.0, weight=1.0, before=0.04, after=0.06)
    assert torch.nonzero(w[0] == 2.0).flatten().tolist() == [3, 4, 5, 6, 7]
    assert torch.nonzero(w[1] == 2.0).flatten().tolist() == [0, 1, 2, 3]
    assert bool((w[2] == 1.0).all())  # outside the crop


def test_zero_weight_gives_ones_and_negative_values_are_refused():
    w = onset_frame_weights([[0.5]], [0.0], 50, 50.0, weight=0.0, before=0.06, after=0.1)
    assert bool((w == 1.0).all())
    with pytest.raises(ConfigError, match="must be >= 0"):
        OnsetLossConfig(weight=-1.0)


def test_weighted_loss_is_the_weighted_mean_and_metrics_stay_unweighted():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 10, 8)
    codes = torch.randint(0, 8, (2, 3, 10))
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    weights = torch.ones(2, 10)
    weights[0, 2:4] = 5.0
    plain, m_plain = masked_codebook_metrics(logits, codes, mask)
    weighted, m_weighted = masked_codebook_metrics(logits, codes, mask, weights)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 8), codes.reshape(-1), reduction="none").view(2, 3, 10)
    w = (weights * mask)[:, None, :].expand(2, 3, 10)
    expected = ((ce * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2))).mean()
    assert torch.allclose(weighted, expected, atol=1e-6)
    assert not torch.allclose(weighted, plain)
    assert m_plain == m_weighted
    same, _ = masked_codebook_metrics(logits, codes, mask, torch.ones(2, 10))
    assert torch.allclose(same, plain, atol=1e-6)


def test_onsets_are_detected_from_the_decoded_codes(click_cache):
    onsets = compute_onsets(CacheReader(click_cache), click_decode, SR, batch_size=2)
    assert set(onsets) == set(CLICKS)
    for name, frames in CLICKS.items():
        assert len(onsets[name]) == len(frames), (name, onsets[name])
        assert np.allclose(onsets[name], np.asarray(frames) / RATE, atol=0.01)


def test_onsets_are_kept_beside_the_cache_and_reused(click_cache):
    calls = []

    def decode(codes):
        calls.append(codes.shape[0])
        return click_decode(codes)

    reader = CacheReader(click_cache)
    first = load_or_compute_onsets(reader, decode, SR, "clicks")
    assert calls and (click_cache / SIDECAR).is_file()
    calls.clear()
    assert load_or_compute_onsets(reader, decode, SR, "clicks") == first
    assert not calls  # read back, not recomputed
    load_or_compute_onsets(reader, decode, SR, "another-codec")
    assert calls  # another codec: recomputed
    assert json.loads((click_cache / SIDECAR).read_text())["key"]["codec"] == "another-codec"


def click_task_config(cache, **sections):
    """A tiny LM task on the click cache (1 s crops) whose codec is :class:`ClickCodec` (patched in)."""
    return {
        "task": "lm",
        "data": {"cache": str(cache), "duration": 1.0},
        "codec": {"path": "clicks"},
        "lm": {"dim": 16, "num_layers": 1, "num_heads": 2},
        **sections,
    }


def test_lm_task_weights_the_frames_near_the_true_onsets(click_cache, monkeypatch):
    monkeypatch.setattr(LMTask, "codec", lambda self: ClickCodec())
    task = LMTask(click_task_config(click_cache, onsets={"weight": 2.0, "before": 0.04, "after": 0.04}))
    train, _ = task.build_datasets()
    items = [train[i] for i in range(len(train))]
    batch = task.collate(items)
    weights = task.frame_weights(batch)
    assert weights is not None and weights.shape == (2, 50)
    for b, item in enumerate(items):
        # the detected onset lies within a few ms of the burst's frame: the window is that frame's +-2,
        # give or take the neighbouring frame on either side
        frames = [f - item["audio_start"] for f in CLICKS[item["id"]]]
        core = {t for f in frames for t in range(f - 1, f + 1) if 0 <= t < 50}
        hull = {t for f in frames for t in range(f - 3, f + 3) if 0 <= t < 50}
        weighted = set(torch.nonzero(weights[b] == 3.0).flatten().tolist())
        assert core <= weighted <= hull, (item["id"], sorted(weighted))
        assert bool((weights[b][weights[b] != 3.0] == 1.0).all())
    assert any(weights[b].max() == 3.0 for b in range(2))
    model = task.build_model()
    loss, metrics = task.loss(model, batch, 0)
    assert torch.isfinite(loss) and metrics["weighted_loss"] == pytest.approx(float(loss.detach()))


def test_onset_config_errors_are_config_errors(click_cache):
    cfg = {"task": "lm", "data": {"cache": str(click_cache), "duration": 1.0}, "onsets": {"weight": -2}}
    with pytest.raises(ConfigError, match="must be >= 0"):
        LMTask(cfg)
    cfg["onsets"] = {"wieght": 2}
    with pytest.raises(ConfigError):
        LMTask(cfg)


def test_logged_code_loss_stays_unweighted(click_cache, monkeypatch):
    monkeypatch.setattr(LMTask, "codec", lambda self: ClickCodec())
    cfg = click_task_config(click_cache)
    torch.manual_seed(0)
    plain_task = LMTask(cfg)
    model = plain_task.build_model().eval()  # no random condition dropout between the two calls
    train, _ = plain_task.build_datasets()
    batch = plain_task.collate([train[0], train[1]])
    plain_loss, _ = plain_task.loss(model, batch, 0)
    weighted_task = LMTask({**cfg, "onsets": {"weight": 5.0}})
    weighted_loss, metrics = weighted_task.loss(model, batch, 0)
    assert metrics["code_loss"] == pytest.approx(float(plain_loss.detach()), rel=1e-5)
    assert float(weighted_loss.detach()) != pytest.approx(float(plain_loss.detach()), rel=1e-5)


@pytest.mark.parametrize("failing", ["temp_file_beside", "replace"])
def test_a_read_only_cache_still_gets_its_onsets(click_cache, monkeypatch, failing):
    """Creating the sidecar's temporary file, or renaming it into place, fails: no sidecar, no debris."""
    import foleygen.atomic

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    if failing == "temp_file_beside":
        monkeypatch.setattr(foleygen.atomic, "temp_file_beside", refuse)
    else:
        monkeypatch.setattr(foleygen.atomic.os, "replace", refuse)
    onsets = load_or_compute_onsets(CacheReader(click_cache), click_decode, SR, "clicks")
    assert set(onsets) == set(CLICKS) and not (click_cache / SIDECAR).exists()
    assert not list(click_cache.glob(f".{SIDECAR}*"))


# ------------------------------------------------------------------------------ visual onset loss
FPS = 10.0
COMPACT = {"fps": FPS, "image_size": 16, "dim": 8, "channels": [8], "groups": 4}
#: audio frames (50 Hz) of each flash clip's sounds; clip f5 is the validation clip
FLASHES = [[6, 31], [17], [42, 12], [26], [3, 36], [21]]


def test_frame_targets_mark_the_video_frame_holding_each_onset():
    # a crop from 0.1 s at 10 fps: 0.05 s is before it, 0.39 s is crop time 0.29 (frame 2), 1.2 s lies
    # past its 10 frames
    t = onset_frame_targets([[0.05, 0.39, 1.2], []], [0.1, 0.0], 10, FPS)
    assert t.shape == (2, 10)
    assert torch.nonzero(t[0]).flatten().tolist() == [2]
    assert t[1].sum() == 0
    # 0.29 * 100 = 28.999999999999996, yet 0.29 s lies in frame 29 of a 100 fps video
    assert torch.nonzero(onset_frame_targets([[0.29]], [0.0], 40, 100.0)[0]).flatten().tolist() == [29]
    with pytest.raises(ConfigError, match="must be >= 0"):
        OnsetLossConfig(visual_weight=-0.5)


@pytest.fixture
def flash_cache(tmp_path):
    """6 frames clips of 1 s: grey frames, and a white one with each sound (code 7 at FLASHES)."""
    visual = {**VISUAL, "kind": "compact", "path": None, "trainable": True, "store": "frames"}
    init_cache(tmp_path / "f", make_fingerprint(codec=CODEC, visual=visual, duration=1.0))
    w = ShardWriter(tmp_path / "f", 0, 1)
    for i, audio_frames in enumerate(FLASHES):
        codes = np.zeros((2, 50), dtype=np.int64)
        codes[0, audio_frames] = 7
        frames = np.full((10, 16, 16, 3), 60, dtype=np.uint8)
        for a in audio_frames:
            frames[int(a / RATE * FPS)] = 250
        w.add(f"f{i}", codes, frames, split="val" if i == 5 else "train", label=None, seconds=1.0)
    w.finalize()
    return tmp_path / "f"


def flash_config(cache):
    cfg = click_task_config(cache, onsets={"visual_weight": 1.0})
    cfg["visual"] = {"kind": "compact", "config": COMPACT}
    return cfg


def task_model_batch(config):
    """The task of ``config`` (with :class:`ClickCodec` patched in by the caller), a fresh model (seed 0),
    one batch of every training clip, and the validation dataset."""
    task = LMTask(config)
    torch.manual_seed(0)
    model = task.build_model()
    train, val = task.build_datasets()
    return task, model, task.collate([train[i] for i in range(len(train))]), val


def assert_head_stays_out_of_checkpoints(task, model, head, directory):
    """``task`` saves ``model`` without its training-only ``head``, and loading the checkpoint restores
    everything else exactly (the head starts fresh)."""
    from foleygen.checkpoint import load_checkpoint_dir

    task.save_pretrained(model, directory)
    _, state = load_checkpoint_dir(directory)
    assert any(k.startswith("visual.") for k in state)
    assert not any(k.startswith(f"{head}.") for k in state)
    again = task.build_model()
    task.load_pretrained(again, directory)
    for name, p in model.state_dict().items():
        if not name.startswith(f"{head}."):
            assert torch.equal(again.state_dict()[name], p), name


def test_visual_onset_loss_teaches_the_encoder_when_sounds_start(flash_cache, monkeypatch):
    monkeypatch.setattr(LMTask, "codec", lambda self: ClickCodec())
    task, model, batch, val = task_model_batch(flash_config(flash_cache))
    assert model.head_names == ("onset_head",)
    loss, metrics = task.loss(model, batch, 0)
    assert {"code_loss", "visual_onset_loss", "visual_onset_f1"} <= set(metrics)
    assert float(loss.detach()) == pytest.approx(metrics["code_loss"] + metrics["visual_onset_loss"], rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.onset_head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.visual.parameters())
    # the encoder and its head alone (the LM's loss has nothing to do with this and costs most)
    opt = torch.optim.Adam([*model.visual.parameters(), *model.onset_head.parameters()], lr=1e-2)
    for _ in range(80):
        scores = model.onset_head(model.features(batch["visual"]))[..., 0]  # [B, F]
        loss, metrics = task.term("visual_onsets").score_loss(scores, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["visual_onset_f1"] == 1.0 and metrics["visual_onset_loss"] < 0.1
    model.eval()
    held_out = task.validate(model, task.collate([val[0]]))
    assert held_out["visual_onset_f1"] == 1.0  # the white frame of an unseen clip, at its own time


def test_visual_onset_head_needs_a_trained_encoder_and_stays_out_of_checkpoints(flash_cache, click_cache, tmp_path):
    from media_helpers import tiny_codec_dir

    with pytest.raises(ConfigError, match="set visual.kind: compact"):
        LMTask(click_task_config(click_cache, onsets={"visual_weight": 1.0}))
    cfg = flash_config(flash_cache)
    cfg["codec"] = {"path": str(tiny_codec_dir(tmp_path / "codec"))}
    task = LMTask(cfg)
    torch.manual_seed(2)
    assert_head_stays_out_of_checkpoints(task, task.build_model(), "onset_head", tmp_path / "ckpt")


def test_one_codec_directory_named_two_ways_shares_the_onsets(click_cache, monkeypatch, tmp_path):
    calls = []

    class CountingCodec(ClickCodec):
        def decode(self, codes):
            calls.append(codes.shape[0])
            return click_decode(codes)

    monkeypatch.setattr(LMTask, "codec", lambda self: CountingCodec())
    (tmp_path / "codec").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "codec")
    first = LMTask(click_task_config(click_cache, codec={"path": str(tmp_path / "codec")}, onsets={"weight": 1.0}))
    assert calls and set(first.term("onset_weights").onsets()) == set(CLICKS)
    decoded = len(calls)
    LMTask(click_task_config(click_cache, codec={"path": str(tmp_path / "link")}, onsets={"weight": 1.0}))
    assert len(calls) == decoded  # read from the sidecar, not decoded again
    LMTask(click_task_config(click_cache, codec={"path": "another-codec"}, onsets={"weight": 1.0}))
    assert len(calls) > decoded  # a different codec is decoded afresh


# ------------------------------------------------------------------------ visual onset-class loss
#: the class of each FLASHES sound, and the colour its flash frame has (the encoder must tell them apart)
FLASH_CLASSES = [["glass", "wood"], ["wood"], ["glass", "glass"], ["wood"], ["wood", "glass"], ["glass"]]
COLOURS = {"glass": (250, 40, 40), "wood": (40, 40, 250)}


def write_events(directory, clip_id, events):
    path = directory / f"{clip_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"duration": 1.0, "events": events}))


@pytest.fixture
def colour_flash_cache(tmp_path):
    """FLASHES clips whose flash frames are red (glass) or blue (wood), and their event files in
    ``tmp_path / "events"``, each with an off-screen and a spinning event that the loss must ignore."""
    visual = {**VISUAL, "kind": "compact", "path": None, "trainable": True, "store": "frames"}
    init_cache(tmp_path / "f", make_fingerprint(codec=CODEC, visual=visual, duration=1.0))
    w = ShardWriter(tmp_path / "f", 0, 1)
    for i, (audio_frames, classes) in enumerate(zip(FLASHES, FLASH_CLASSES, strict=True)):
        codes = np.zeros((2, 50), dtype=np.int64)
        codes[0, audio_frames] = 7
        frames = np.full((10, 16, 16, 3), 60, dtype=np.uint8)
        events = [{"time": 0.55, "class": "metal", "kind": "impact", "offscreen": True}]
        events.append({"time": 0.35, "class": "metal", "kind": "spin", "offscreen": False})
        for a, name in zip(audio_frames, classes, strict=True):
            frames[int(a / RATE * FPS)] = COLOURS[name]
            events.append({"time": a / RATE, "class": name, "kind": "impact", "offscreen": False})
        w.add(f"f{i}", codes, frames, split="val" if i == 5 else "train", label=None, seconds=1.0)
        write_events(tmp_path / "events", f"f{i}", events)
    w.finalize()
    return tmp_path / "f"


def colour_config(cache, **onsets):
    cfg = click_task_config(cache, onsets={"class_weight": 2.0, "events": str(cache.parent / "events"), **onsets})
    cfg["visual"] = {"kind": "compact", "config": COMPACT}
    return cfg


def test_class_targets_mark_each_impact_frame_with_its_classes():
    index = {"glass": 0, "wood": 1}
    impacts = [[(0.05, "glass"), (0.39, "wood"), (0.31, "glass"), (0.6, "paper"), (1.2, "wood")], None, []]
    targets, known = onset_class_targets(impacts, [0.1, 0.0, 0.0], 10, FPS, index)
    assert targets.shape == (3, 10, 2) and known.tolist() == [True, False, True]
    # crop time 0.29 and 0.21 s: frame 2 holds a wood and a glass impact; 0.05 s is before the crop,
    # 1.2 s past it, and paper is not a class of the run
    assert torch.nonzero(targets[0]).tolist() == [[2, 0], [2, 1]]
    assert targets[1:].sum() == 0


def test_impacts_are_read_on_screen_only_and_bad_event_files_are_named(tmp_path):
    from foleygen.errors import DataError

    write_events(tmp_path, "train/0", [{"time": 0.5, "class": "wood", "kind": "impact", "offscreen": False}])
    write_events(tmp_path, "train/1", [{"time": 0.5, "class": "wood", "kind": "roll", "offscreen": False}])
    write_events(tmp_path, "train/2", [{"time": 0.5, "class": "wood", "kind": "impact", "offscreen": True}])
    impacts = load_clip_impacts(tmp_path, ["train/0", "train/1", "train/2", "train/3"])
    assert impacts == {"train/0": [(0.5, "wood")], "train/1": [], "train/2": []}  # train/3 has no file
    (tmp_path / "train" / "1.json").write_text("{not json")
    with pytest.raises(DataError, match="not a readable event file") as err:
        load_clip_impacts(tmp_path, ["train/0", "train/1"])
    assert "1.json" in str(err.value)
    with pytest.raises(DataError, match="no event file"):
        load_clip_impacts(tmp_path, ["val/7"])


def test_onset_class_config_errors(colour_flash_cache, click_cache):
    with pytest.raises(ConfigError, match="needs onsets.events"):
        OnsetLossConfig(class_weight=1.0)
    with pytest.raises(ConfigError, match="must be >= 0"):
        OnsetLossConfig(class_weight=-1.0, events="e")
    with pytest.raises(ConfigError, match="set visual.kind: compact"):
        LMTask(click_task_config(click_cache, onsets={"class_weight": 1.0, "events": str(colour_flash_cache)}))


def test_onset_class_loss_teaches_the_encoder_which_object_hits(colour_flash_cache, monkeypatch, tmp_path):
    from media_helpers import tiny_codec_dir

    monkeypatch.setattr(LMTask, "codec", lambda self: ClickCodec())
    task, model, batch, val = task_model_batch(colour_config(colour_flash_cache))
    assert task.term("onset_classes").classes == ["glass", "wood"]  # metal is heard off screen or spinning only
    assert model.head_names == ("onset_class_head",)
    loss, metrics = task.loss(model, batch, 0)
    assert {"visual_onset_class_loss", "visual_onset_class_acc"} <= set(metrics)
    expected = metrics["code_loss"] + 2.0 * metrics["visual_onset_class_loss"]
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.onset_class_head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.visual.parameters())
    # the encoder and its head alone: red flashes are glass, blue ones wood
    opt = torch.optim.Adam([*model.visual.parameters(), *model.onset_class_head.parameters()], lr=1e-2)
    for _ in range(80):
        scores = model.onset_class_head(model.features(batch["visual"]))  # [B, F, C]
        loss, metrics = task.term("onset_classes").score_loss(scores, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["visual_onset_class_acc"] == 1.0 and metrics["visual_onset_class_loss"] < 0.1
    model.eval()
    assert task.validate(model, task.collate([val[0]]))["visual_onset_class_acc"] == 1.0  # an unseen clip
    # the head is training-only: not in the checkpoint, and a fine-tuning run starts it fresh
    cfg = colour_config(colour_flash_cache)
    cfg["codec"] = {"path": str(tiny_codec_dir(tmp_path / "codec"))}
    monkeypatch.undo()
    assert_head_stays_out_of_checkpoints(LMTask(cfg), model, "onset_class_head", tmp_path / "ckpt")
