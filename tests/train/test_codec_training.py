from pathlib import Path

import pytest
import torch

from foleygen.codecs import load_codec
from foleygen.config import load_yaml
from foleygen.errors import CheckpointError, ConfigError
from foleygen.train.codec_task import CodecTask, RandomCrops
from foleygen.train.task import TASKS

TINY = Path(__file__).resolve().parents[2] / "configs" / "codec_tiny.yaml"


def test_task_is_registered_and_validates_config():
    assert "codec" in TASKS
    with pytest.raises(ConfigError, match="data.train"):
        CodecTask({"task": "codec"})
    with pytest.raises(ConfigError, match="unknown source"):
        CodecTask({"data": {"train": [{"kind": "nope"}]}}).build_datasets()


def test_a_few_steps_by_hand_reduce_the_loss_and_export(tmp_path):
    torch.manual_seed(0)
    task = TASKS["codec"](load_yaml(TINY))
    model = task.build_model()
    train, val = task.build_datasets()
    assert len(train) == 4 and val is not None
    item = train[0]
    assert item.shape == (1, 6400) and item.dtype == torch.float32  # 0.4 s of 16 kHz, whole frames
    batch = task.collate([train[i] for i in range(2)])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses, metrics = [], {}
    for step in range(8):  # 3 unquantised warm-up steps, then k-means init and quantised steps
        loss, metrics = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert model.codec.quantizer.initialised
    assert metrics["quantized"] == 1.0 and 0 < metrics["usage"] <= 1 and metrics["perplexity"] >= 1
    # a fixed batch: the reconstruction loss (without commitment) must fall
    rec = losses[-1] - 0.25 * metrics["commit"]
    assert rec < losses[0]
    val_metrics = task.validate(model, batch)
    assert {"mel", "si_sdr", "sc"} <= set(val_metrics)
    task.save_pretrained(model, tmp_path / "codec")
    codec = load_codec(str(tmp_path / "codec"))
    assert codec.encode(batch).shape == (2, 2, 20)


def test_random_crops_depend_on_epoch_only():
    source = [torch.arange(100.0)[None]]
    crops = RandomCrops(source, 10, seed=1)
    a = crops[0]
    assert torch.equal(a, crops[0])
    crops.set_epoch(5)
    assert a.shape == crops[0].shape == (1, 10)
    short = RandomCrops([torch.ones(1, 4)], 10, seed=1)[0]
    assert short.shape == (1, 10) and short[0, 4:].abs().sum() == 0


def test_the_discriminator_is_declared_as_an_extra_optimiser_and_gets_only_its_own_gradient():
    from foleygen.codecs.losses import discriminator_hinge_loss
    from foleygen.train.optim import build_optimizer

    torch.manual_seed(0)
    # warmup_steps=9: the quantiser stays bypassed, so a second forward pass is the same computation
    config = load_yaml(
        TINY, ["codec_train.discriminator=true", "codec_train.disc_start=0", "codec_train.warmup_steps=9"]
    )
    task = TASKS["codec"](config)
    model = task.build_model()
    (extra,) = task.extra_optimizers(model)
    disc = list(model.discriminator.parameters())
    assert extra.name == "discriminator" and [id(p) for p in extra.params] == [id(p) for p in disc]
    main = build_optimizer(model, 1e-3, 0.01, exclude=extra.params)
    in_main = {id(p) for group in main.param_groups for p in group["params"]}
    assert in_main.isdisjoint(map(id, disc)) and id(model.codec.encoder[0].weight) in in_main
    batch = torch.randn(2, 1, 3200) * 0.1
    before = [p.detach().clone() for p in disc]
    loss, metrics = task.loss(model, batch, step=0)
    assert {"d_loss", "g_adv", "g_fm"} <= set(metrics)
    assert all(torch.equal(a, b) for a, b in zip(before, disc, strict=True))  # loss() steps nothing
    # the returned loss carries the discriminator's term; the logged one is the codec's objective
    assert metrics["loss"] == pytest.approx(loss.item() - metrics["d_loss"], rel=1e-5)
    loss.backward()
    assert model.codec.encoder[0].weight.grad is not None
    # the discriminator's gradient is its hinge loss's alone: the generator's terms add nothing to it
    recon = model(batch, quantize=False)[0].detach()
    reference = torch.autograd.grad(
        discriminator_hinge_loss(model.discriminator(batch), model.discriminator(recon)), disc
    )
    for p, g in zip(disc, reference, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert extra.step(0)["discriminator/grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, disc, strict=True))


def test_no_discriminator_no_extra_optimiser():
    task = TASKS["codec"](load_yaml(TINY))
    assert task.extra_optimizers(task.build_model()) == []


def test_synthfoley_source_cache_dir(tmp_path):
    from foleygen.train.codec_task import SOURCES

    entry = {"kind": "synthfoley", "num": 1, "duration": 0.5, "cache_dir": str(tmp_path)}
    first = SOURCES["synthfoley"](entry, 16000, 1)[0]
    assert first.shape == (1, 8000) and len(list(tmp_path.glob("*.npy"))) == 1
    again = SOURCES["synthfoley"](entry, 16000, 1)[0]  # a fresh process/worker reads the file
    assert torch.equal(first, again)


def _trained_tiny_codec(task, batch, steps=5):
    model = task.build_model()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(steps):  # 3 warm-up steps, then quantised: the codebooks are initialised
        loss, _ = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_decoder_only_fine_tuning_keeps_every_code_and_improves_the_sound(tmp_path):
    torch.manual_seed(0)
    base_task = TASKS["codec"](load_yaml(TINY))
    train, _ = base_task.build_datasets()
    batch = base_task.collate([train[i] for i in range(2)])
    base_task.save_pretrained(_trained_tiny_codec(base_task, batch), tmp_path / "base")
    base = load_codec(str(tmp_path / "base"))

    with pytest.raises(ConfigError, match="init_from"):  # frozen random codebooks would be useless
        TASKS["codec"](load_yaml(TINY, ["codec_train.train_only=decoder"]))
    task = TASKS["codec"](load_yaml(TINY, ["codec_train.train_only=decoder", f"train.init_from={tmp_path / 'base'}"]))
    model = task.build_model()
    task.load_pretrained(model, tmp_path / "base")
    model.train()
    assert not model.codec.quantizer.training and not model.codec.encoder.training and model.codec.decoder.training
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("codec.decoder.") for n in trainable)
    frozen = {k: v.clone() for k, v in model.codec.state_dict().items() if not k.startswith("decoder.")}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for step in range(6):
        loss, metrics = task.loss(model, batch, step)
        assert metrics["quantized"] == 1.0  # no unquantised warm-up: the codebooks are already trained
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # encoder weights and codebook buffers (EMA statistics included) are untouched, the decoder moved
    for k, v in model.codec.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    task.save_pretrained(model, tmp_path / "tuned")
    tuned = load_codec(str(tmp_path / "tuned"))
    assert torch.equal(tuned.encode(batch), base.encode(batch))
    assert not torch.equal(tuned.decode(base.encode(batch)), base.decode(base.encode(batch)))


def test_load_pretrained_refuses_a_codec_of_another_shape(tmp_path):
    torch.manual_seed(0)
    task = TASKS["codec"](load_yaml(TINY))
    train, _ = task.build_datasets()
    task.save_pretrained(_trained_tiny_codec(task, task.collate([train[0]])), tmp_path / "base")
    other = TASKS["codec"](load_yaml(TINY, ["model.codebook_size=32"]))
    with pytest.raises(CheckpointError, match="codebook_size"):
        other.load_pretrained(other.build_model(), tmp_path / "base")
    with pytest.raises(ConfigError, match="train_only"):
        TASKS["codec"](load_yaml(TINY, ["codec_train.train_only=encoder"]))


def test_spectrum_loss_compares_the_decoders_own_magnitudes_with_the_input_stft():
    torch.manual_seed(0)
    task = TASKS["codec"](load_yaml(TINY, ["codec_train.w_spectrum=0.5"]))
    model = task.build_model()
    wav = torch.randn(2, 1, 3200) * 0.1
    recon, q, mag = model(wav, quantize=False)
    codec = model.codec
    assert q is None and recon.shape == wav.shape
    assert mag.shape == (2, codec.num_bins, 3200 // codec.config.stft_hop)
    # the same magnitudes the inverse STFT used: forward and reconstruct agree
    assert torch.equal(codec(wav, quantize=False)[0], recon)
    true = codec.stft(wav.reshape(2, -1)).abs()
    sc, logmag = task._spectrum_losses(codec, true, wav)
    assert sc.item() == pytest.approx(0.0, abs=1e-6) and logmag.item() == pytest.approx(0.0, abs=1e-6)
    sc, logmag = task._spectrum_losses(codec, 2 * true, wav)
    assert sc.item() == pytest.approx(1.0, rel=1e-4) and logmag.item() > 0.5
    # in the total: the weighted term is there and it trains the decoder
    loss, metrics = task.loss(model, wav, step=0)
    assert {"spec_sc", "spec_logmag"} <= set(metrics)
    without = TASKS["codec"](load_yaml(TINY)).loss(model, wav, step=0)[0]
    expected = without + 0.5 * (metrics["spec_sc"] + metrics["spec_logmag"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    loss.backward()
    assert model.codec.decoder[-1].weight.grad.abs().sum() > 0


def test_spectrum_bands_weigh_a_quiet_band_like_a_loud_one():
    task = TASKS["codec"](load_yaml(TINY, ["codec_train.w_spectrum=1.0", "codec_train.spectrum_bands_hz=[2000]"]))
    codec = task.build_model().codec
    t = torch.arange(3200) / 16000
    wav = (torch.sin(2 * torch.pi * 300 * t) + 0.05 * torch.sin(2 * torch.pi * 4000 * t))[None, None]
    true = codec.stft(wav.reshape(1, -1)).abs()
    no_high = true.clone()
    no_high[:, round(2000 / 50) :] = 0  # the quiet 4 kHz tone dropped
    one_band, _ = task._spectrum_losses(codec, no_high, wav)
    two_bands, _ = task._spectrum_losses(codec, no_high, wav, (2000.0,))
    assert one_band.item() < 0.1  # globally the quiet tone hardly counts ...
    assert two_bands.item() == pytest.approx(0.5, abs=1e-3)  # ... per band it is half of the loss
