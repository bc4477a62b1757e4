"""The LM task's loss-term seam (foleygen.train.loss_terms): a term defined outside foleygen plugs in."""

from dataclasses import dataclass

import pytest
import torch
from test_lm_task import feature_cache, lm_config  # noqa: F401  (a frozen-feature cache of 6 clips)
from torch import nn

from foleygen.config import UnknownKeyError
from foleygen.errors import ConfigError
from foleygen.train.lm_config import LMRunConfig
from foleygen.train.lm_task import LMTask, masked_codebook_metrics
from foleygen.train.loss_terms import (
    LOSS_TERMS,
    LossTerm,
    LossTermContext,
    build_loss_terms,
    loss_term_section,
)
from foleygen.train.task import TASK_CONFIGS, TASKS, build_task


@dataclass
class ProbeConfig:
    """``probe:``: how much the probe's loss weighs, and how much its frames weigh in the codes' loss."""

    weight: float = 0.0
    frame_weight: float = 1.0


@dataclass
class ProbeRunConfig(LMRunConfig):
    probe: ProbeConfig = loss_term_section(ProbeConfig)


class MeanProbe(nn.Linear):
    """Predicts a clip's mean visual feature from each frame's: ``[B, F, D] -> [B]``."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, 1)

    def forward(self, features, visual_mask=None):
        return super().forward(features.float())[..., 0].mean(dim=1)


class ProbeTerm(LossTerm):
    name = "probe"

    def __init__(self, config: ProbeConfig) -> None:
        self.weight, self.frame_weight = config.weight, config.frame_weight

    def heads(self, visual_dim):
        return {"probe_head": MeanProbe(visual_dim)}

    def frame_weights(self, batch):
        weights = torch.ones(batch["codes"].shape[0], batch["codes"].shape[-1])
        weights[:, :10] = self.frame_weight  # the first 10 audio frames
        return weights

    def loss(self, batch, outputs):
        target = batch["visual"].float().mean(dim=(1, 2))
        loss = ((outputs.heads["probe_head"] - target) ** 2).mean()
        return loss, {"probe_loss": float(loss.detach())}


def probe_terms(config: ProbeConfig, context: LossTermContext) -> list[LossTerm]:
    return [ProbeTerm(config)] if config.weight > 0 else []


@pytest.fixture
def probe_task(monkeypatch):
    """``task: lm_probe``: the LM task with the ``probe:`` section (registered for this test only)."""
    monkeypatch.setitem(LOSS_TERMS, "probe", probe_terms)
    monkeypatch.setitem(TASKS, "lm_probe", LMTask)
    monkeypatch.setitem(TASK_CONFIGS, "lm_probe", ProbeRunConfig)


def probe_config(cache, **probe):
    return {**lm_config(cache), "task": "lm_probe", "probe": {"weight": 0.5, "frame_weight": 3.0, **probe}}


def test_a_plug_in_term_adds_its_head_frame_weights_and_loss(probe_task, feature_cache):  # noqa: F811
    task = build_task(probe_config(feature_cache))
    assert [t.name for t in task.terms] == ["probe"]
    torch.manual_seed(0)
    model = task.build_model()
    assert model.head_names == ("probe_head",) and "probe_head.weight" in model.state_dict()
    train, _ = task.build_datasets()
    batch = task.collate([train[i] for i in range(4)])
    loss, metrics = task.loss(model.eval(), batch, 0)
    logits, heads = model(batch["codes"], batch["visual"])
    weights = torch.ones(4, 50)
    weights[:, :10] = 3.0
    code_loss, _ = masked_codebook_metrics(logits, batch["codes"], batch["codes_mask"], weights)
    expected = code_loss + 0.5 * ((heads["probe_head"] - batch["visual"].mean(dim=(1, 2))) ** 2).mean()
    assert torch.allclose(loss, expected)
    assert metrics["weighted_loss"] == pytest.approx(float(code_loss.detach())) and "probe_loss" in metrics
    loss.backward()
    assert model.probe_head.weight.grad is not None and model.probe_head.weight.grad.abs().sum() > 0
    assert "probe_loss" in task.validate(model, batch)


def test_plug_in_sections_parse_strictly(probe_task, feature_cache):  # noqa: F811
    with pytest.raises(UnknownKeyError, match=r"did you mean 'probe.weight'\?"):
        build_task(probe_config(feature_cache, wieght=1.0))
    cfg = probe_config(feature_cache)
    cfg["prob"] = cfg.pop("probe")
    with pytest.raises(UnknownKeyError, match=r"unknown section 'prob' \(did you mean 'probe'\?\)"):
        build_task(cfg)
    assert build_task(probe_config(feature_cache, weight=0.0)).terms == []  # off: no term, no head


def context_of(cache) -> LossTermContext:
    from foleygen.data.cache import CacheReader

    return LossTermContext(
        reader=CacheReader(cache),
        train_splits=["train"],
        trainable_visual=False,
        frame_rate=50.0,
        fps=10.0,
        codec=lambda: None,
        codec_name="unused",
    )


def test_a_section_without_a_factory_names_the_nearest_registered_one(feature_cache):  # noqa: F811
    @dataclass
    class Misnamed(LMRunConfig):
        onset: ProbeConfig = loss_term_section(ProbeConfig)  # registered are "labels" and "onsets"

    run = Misnamed(data=None)
    message = r"no loss terms are registered for the config section 'onset' \(did you mean 'onsets'\?\)"
    with pytest.raises(ConfigError, match=message):
        build_loss_terms(run, context_of(feature_cache))


def test_terms_of_one_run_have_distinct_names_and_heads(probe_task, monkeypatch, feature_cache):  # noqa: F811
    monkeypatch.setitem(LOSS_TERMS, "probe", lambda config, context: [ProbeTerm(config), ProbeTerm(config)])
    with pytest.raises(ConfigError, match="two loss terms of one run have the same name"):
        build_task(probe_config(feature_cache))

    class Clash(ProbeTerm):
        def heads(self, visual_dim):
            return {"lm": MeanProbe(visual_dim)}

    monkeypatch.setitem(LOSS_TERMS, "probe", lambda config, context: [Clash(config)])
    with pytest.raises(ConfigError, match="a loss term's head is named 'lm'"):
        build_task(probe_config(feature_cache)).build_model()


def test_frame_weights_of_several_terms_multiply(probe_task, monkeypatch, feature_cache):  # noqa: F811
    class Other(ProbeTerm):
        name = "other"

        def heads(self, visual_dim):
            return {}

        def loss(self, batch, outputs):
            return None, {}

    monkeypatch.setitem(LOSS_TERMS, "probe", lambda config, context: [ProbeTerm(config), Other(config)])
    task = build_task(probe_config(feature_cache, frame_weight=2.0))
    train, _ = task.build_datasets()
    weights = task.frame_weights(task.collate([train[0], train[1]]))
    assert weights[:, :10].eq(4.0).all() and weights[:, 10:].eq(1.0).all()
    _, metrics = task.loss(task.build_model(), task.collate([train[0], train[1]]), 0)
    assert "probe_loss" in metrics and "weighted_loss" in metrics
