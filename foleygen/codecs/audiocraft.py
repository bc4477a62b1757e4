"""AudioCraft compression-model checkpoints (AudioGen's and MusicGen's 16/32 kHz EnCodec).

An exported AudioCraft checkpoint (``audiocraft.utils.export.export_encodec``) is a torch file holding
``best_state`` (the model's state dict) and ``xp.cfg`` (the experiment configuration as a YAML string).
A *training* checkpoint holds ``best_state = {"model": state_dict, ...}`` and ``xp.cfg`` as an OmegaConf
``DictConfig`` object, which ``torch.load(weights_only=True)`` refuses to unpickle: we never fall back
to unrestricted unpickling, we say how to convert it. Accepted:

* ``xp.cfg`` as YAML text (exported) or as a plain dict (``OmegaConf.to_container(cfg)``);
* ``best_state`` as a state dict or as ``{"model": state_dict}``;
* a converted directory: ``config.json`` (``{"format": "audiocraft-compression", "xp.cfg": {...}}``) +
  ``model.safetensors`` (:func:`convert_audiocraft_checkpoint` writes one).

The SEANet encoder/decoder + RVQ of AudioCraft is module-for-module the ``encodec`` package's (same
state-dict names); it runs through transformers' ``EncodecModel`` (see :mod:`foleygen.codecs.encodec_hf`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from foleygen.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint_dir, safe_torch_load, save_checkpoint_dir
from foleygen.codecs.encodec_hf import EncodecCodec, build_from_seanet_state, hf_config_from_seanet
from foleygen.errors import CheckpointError

FORMAT = "audiocraft-compression"
_TORCH_SUFFIXES = (".th", ".pt", ".pth", ".bin", ".ckpt")
_CONVERT_HINT = (
    "export it with audiocraft.utils.export.export_encodec(checkpoint, out_file) (stores xp.cfg "
    "as YAML), or re-save it as {'xp.cfg': OmegaConf.to_container(cfg, resolve=True), "
    "'best_state': state_dict}"
)
# SEANet options that transformers' EncodecModel reproduces only at these values
_FIXED = {"activation": "ELU", "disable_norm_outer_blocks": 0, "final_activation": None}
_DECODER_ONLY = {"trim_right_ratio", "final_activation", "final_activation_params"}


def _resolve(node: Any, root: dict, where: Path) -> Any:
    """Resolve OmegaConf-style ``${a.b}`` interpolations (YAML export does not resolve them)."""
    if isinstance(node, dict):
        return {k: _resolve(v, root, where) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root, where) for v in node]
    if isinstance(node, str):
        m = re.fullmatch(r"\$\{([^}]+)\}", node.strip())
        if m:
            value: Any = root
            for part in m.group(1).split("."):
                if not isinstance(value, dict) or part not in value:
                    raise CheckpointError(f"xp.cfg interpolation {node} cannot be resolved", where)
                value = value[part]
            return _resolve(value, root, where)
    return node


def _parse_cfg(raw: Any, path: Path) -> dict:
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise CheckpointError(f"xp.cfg is not valid YAML ({str(err).splitlines()[0]})", path) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"xp.cfg must be YAML text or a mapping, got {type(raw).__name__}", path)
    return _resolve(raw, raw, path)


def _state_of(best: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(best, dict) and "model" in best and isinstance(best["model"], dict):
        best = best["model"]  # a training checkpoint's best_state
    if not isinstance(best, dict) or not best or not all(isinstance(v, torch.Tensor) for v in best.values()):
        raise CheckpointError("best_state is not a state dict of tensors", path)
    return best


def _seanet_params(cfg: dict, path: Path) -> dict:
    """The SEANet/RVQ parameters of an EnCodec xp.cfg, checked against what transformers reproduces."""
    if cfg.get("compression_model", "encodec") != "encodec":
        raise CheckpointError(f"compression_model {cfg.get('compression_model')!r} is not supported (encodec)", path)
    enc = cfg.get("encodec", {})
    if enc.get("autoencoder", "seanet") != "seanet" or enc.get("quantizer", "rvq") != "rvq":
        raise CheckpointError(
            f"only seanet + rvq EnCodec models are supported, got {enc.get('autoencoder')} + {enc.get('quantizer')}",
            path,
        )
    if enc.get("renormalize", False):
        raise CheckpointError("renormalize=true EnCodec models need a per-clip scale that codes cannot carry", path)
    seanet, rvq = dict(cfg.get("seanet", {})), cfg.get("rvq", {})
    if not seanet or not rvq:
        raise CheckpointError("xp.cfg has no seanet/rvq section (not an EnCodec compression model?)", path)
    encoder_over, decoder_over = seanet.pop("encoder", {}) or {}, seanet.pop("decoder", {}) or {}
    shared_enc = {k: v for k, v in encoder_over.items()}
    shared_dec = {k: v for k, v in decoder_over.items() if k not in _DECODER_ONLY}
    if shared_enc != shared_dec:
        raise CheckpointError(
            f"encoder/decoder-specific SEANet overrides differ ({shared_enc} vs {shared_dec}); "
            "transformers' EncodecModel shares one configuration",
            path,
        )
    seanet.update(shared_enc)
    for key, value in _FIXED.items():
        actual = decoder_over.get(key, seanet.get(key, value)) if key.startswith("final") else seanet.get(key, value)
        if actual != value:
            raise CheckpointError(f"seanet.{key}={actual!r} is not supported (only {value!r})", path)
    if float((seanet.get("activation_params") or {}).get("alpha", 1.0)) != 1.0:
        raise CheckpointError("seanet.activation_params.alpha must be 1.0", path)
    if seanet.get("norm_params"):
        raise CheckpointError(f"seanet.norm_params {seanet['norm_params']} are not supported", path)
    sample_rate = cfg.get("sample_rate", enc.get("sample_rate"))
    channels = cfg.get("channels", enc.get("channels", seanet.get("channels", 1)))
    try:
        return dict(
            sample_rate=int(sample_rate),
            channels=int(channels),
            dimension=int(seanet["dimension"]),
            n_filters=int(seanet["n_filters"]),
            n_residual_layers=int(seanet["n_residual_layers"]),
            ratios=[int(r) for r in seanet["ratios"]],
            n_q=int(rvq["n_q"]),
            bins=int(rvq["bins"]),
            causal=bool(seanet.get("causal", enc.get("causal", False))),
            norm=str(seanet["norm"]),
            pad_mode=str(seanet.get("pad_mode", "constant")),
            true_skip=bool(seanet.get("true_skip", True)),
            compress=int(seanet.get("compress", 2)),
            lstm=int(seanet.get("lstm", 2)),
            kernel_size=int(seanet.get("kernel_size", 7)),
            residual_kernel_size=int(seanet.get("residual_kernel_size", 3)),
            last_kernel_size=int(seanet.get("last_kernel_size", 7)),
            dilation_base=int(seanet.get("dilation_base", 2)),
            trim_right_ratio=float(decoder_over.get("trim_right_ratio", seanet.get("trim_right_ratio", 1.0))),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"xp.cfg lacks or mistypes an EnCodec setting ({err})", path) from None


def read_audiocraft_file(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(resolved xp.cfg, state_dict)`` of an AudioCraft compression checkpoint file (weights_only load)."""
    try:
        pkg = safe_torch_load(path)
    except CheckpointError as err:
        # safe_torch_load keeps the first line only; torch's full message (kept as __context__ of the
        # `raise ... from None`) names the refused global, e.g. omegaconf.dictconfig.DictConfig
        detail = f"{err} {err.__context__ or ''}".lower()
        if "omegaconf" in detail:
            raise CheckpointError(
                f"an AudioCraft training checkpoint whose xp.cfg is an OmegaConf object, which "
                f"safe loading refuses; {_CONVERT_HINT}",
                path,
            ) from None
        raise
    if not isinstance(pkg, dict):
        raise CheckpointError(f"not an AudioCraft checkpoint (top level is {type(pkg).__name__})", path)
    if "xp.cfg" not in pkg or "best_state" not in pkg:
        if "pretrained" in pkg:
            raise CheckpointError(
                f"only a pointer to the pretrained model {pkg['pretrained']!r}; download that "
                "model's compression_state_dict.bin and load it instead",
                path,
            )
        raise CheckpointError("not an AudioCraft compression checkpoint (needs 'xp.cfg' and 'best_state')", path)
    return _parse_cfg(pkg["xp.cfg"], path), _state_of(pkg["best_state"], path)


def is_audiocraft_file(path: Path) -> bool:
    """Any torch checkpoint file (tried last; the loader says clearly if it is not AudioCraft's)."""
    return path.is_file() and path.suffix in _TORCH_SUFFIXES


def load_audiocraft_file(path: Path, num_codebooks: int | None) -> EncodecCodec:
    """Load an AudioCraft compression-model checkpoint file."""
    cfg, state = read_audiocraft_file(path)
    return build_from_seanet_state(state, hf_config_from_seanet(**_seanet_params(cfg, path)), path, num_codebooks)


def is_audiocraft_dir(path: Path) -> bool:
    """A directory converted by :func:`convert_audiocraft_checkpoint`."""
    cfg = path / CONFIG_NAME
    if not (path.is_dir() and cfg.is_file()):
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def load_audiocraft_dir(path: Path, num_codebooks: int | None) -> EncodecCodec:
    """Load a converted AudioCraft directory (config.json + model.safetensors)."""
    if not (path / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"converted AudioCraft directory has no {WEIGHTS_NAME}", path)
    config, state = load_checkpoint_dir(path)
    cfg = _parse_cfg(config.get("xp.cfg"), path)
    return build_from_seanet_state(state, hf_config_from_seanet(**_seanet_params(cfg, path)), path, num_codebooks)


def convert_audiocraft_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Write an AudioCraft compression checkpoint file as a ``config.json`` + ``model.safetensors`` directory."""
    src = Path(src)
    cfg, state = read_audiocraft_file(src)
    _seanet_params(cfg, src)  # refuse to write something load_codec will not read
    return save_checkpoint_dir(dst, {"format": FORMAT, "xp.cfg": cfg}, state)
