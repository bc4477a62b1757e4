"""EnCodec-family codecs, run by transformers' ``EncodecModel`` behind the :class:`AudioCodec` contract.

Three checkpoint formats share this one implementation:

* a Hugging Face ``EncodecModel`` directory (``config.json`` + ``model.safetensors``);
* the original ``encodec`` package's ``.th`` state dicts (:mod:`foleygen.codecs.encodec_pkg`);
* AudioCraft compression-model checkpoints (:mod:`foleygen.codecs.audiocraft`).

Why transformers rather than our own SEANet: the SEANet encoder/decoder + RVQ of the ``encodec``
package, of AudioCraft (whose ``modules/seanet.py`` and ``modules/conv.py`` are the same code, with one
extra option, ``disable_norm_outer_blocks``) and of transformers' port are the same architecture, module
for module in the same order. Their state dicts differ only in names (``encoder.model.3.conv.conv`` vs
``encoder.layers.3.conv``, ``weight_g/weight_v`` vs weight-norm parametrisations). So a checkpoint is
loaded by *renaming keys* (:func:`seanet_to_hf_state_dict`) into an ``EncodecModel`` built from the
checkpoint's stored configuration (:func:`hf_config_from_seanet`), and the tests check codes and audio
against the ``encodec`` package itself. Options transformers lacks are refused with a clear error.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Any

import torch

from foleygen.codecs.base import AudioCodec
from foleygen.errors import CheckpointError, CodecError


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise CheckpointError(
            "EnCodec checkpoints need the 'transformers' package (pip install 'foleygen[hf]')"
        ) from None
    return transformers


class EncodecCodec(AudioCodec):
    """A transformers ``EncodecModel`` as an :class:`AudioCodec`.

    ``encode(wav [B, C, S]) -> codes [B, K, ceil(S / hop)]``, ``decode(codes [B, K, T]) -> wav [B, C, T * hop]``.
    K is ``num_codebooks`` (<= the checkpoint's quantizer count; fewer = lower bandwidth).

    Limitation: the 48 kHz EnCodec normalises each 1 s chunk by its RMS and stores that scale next to
    the codes; codes alone (the LM's vocabulary) cannot carry it. This wrapper therefore always runs
    unnormalised and unchunked in EnCodec's sense (``normalize=False, segment=None``); for inputs longer
    than ``chunk_seconds`` it uses its own context-overlap chunking (see ``AudioCodec.chunked_encode``).
    """

    def __init__(
        self, model: Any, num_codebooks: int | None = None, *, chunk_seconds: float = 30.0, context_seconds: float = 2.0
    ) -> None:
        super().__init__()
        cfg = model.config
        self.model = model.eval()
        self.sample_rate = int(cfg.sampling_rate)
        self.channels = int(cfg.audio_channels)
        self._hop = int(math.prod(cfg.upsampling_ratios))
        self.frame_rate = self.sample_rate / self._hop
        self.cardinality = int(cfg.codebook_size)
        self.max_num_codebooks = len(model.quantizer.layers)
        self.num_codebooks = self.max_num_codebooks
        self.chunk_seconds, self.context_seconds = chunk_seconds, context_seconds
        if num_codebooks is not None:
            self.set_num_codebooks(num_codebooks)

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame (product of the SEANet ratios)."""
        return self._hop

    def _chunking(self) -> tuple[int, int]:
        return (
            max(1, round(self.chunk_seconds * self.frame_rate)),
            max(1, round(self.context_seconds * self.frame_rate)),
        )

    def _encode_whole(self, wav: torch.Tensor) -> torch.Tensor:
        hop = self._hop
        t = -(-wav.shape[-1] // hop)
        emb = self.model.encoder(wav)[..., :t]  # SEANet pads to whole frames itself: [B, D, T]
        residual, codes = emb, []
        for layer in self.model.quantizer.layers[: self.num_codebooks]:
            idx = layer.encode(residual)  # [B, T]
            residual = residual - layer.decode(idx)
            codes.append(idx)
        return torch.stack(codes, dim=1)

    def _decode_whole(self, codes: torch.Tensor) -> torch.Tensor:
        emb = 0
        for i, layer in enumerate(self.model.quantizer.layers[: codes.shape[1]]):
            emb = emb + layer.decode(codes[:, i])
        return self.model.decoder(emb)[..., : codes.shape[-1] * self._hop]

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, C, S]`` float -> ``codes [B, K, ceil(S / hop)]`` int64."""
        self.check_audio(wav)
        if wav.shape[-1] == 0:
            raise CodecError("cannot encode empty audio (0 samples)")
        dtype = next(self.model.parameters()).dtype
        return self.chunked_encode(wav.to(dtype), self._encode_whole, *self._chunking())

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, K, T]`` int64 -> ``wav [B, C, T * hop]`` float."""
        self.check_codes(codes)
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], self.channels, 0)
        return self.chunked_decode(codes.long(), self._decode_whole, *self._chunking()).float()


# ---------------------------------------------------------------------- HF directories
def is_hf_encodec_dir(path: Path) -> bool:
    """A directory whose config.json says ``model_type: encodec``."""
    import json

    cfg = path / "config.json"
    if not (path.is_dir() and cfg.is_file()):
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") == "encodec"
    except (OSError, ValueError):
        return False


def load_hf_encodec(path: Path, num_codebooks: int | None) -> EncodecCodec:
    """Load a transformers ``EncodecModel`` directory (safetensors weights only)."""
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(
            "Hugging Face EnCodec directory has no model.safetensors (only safetensors "
            "weights are loaded; convert pytorch_model.bin with transformers' save_pretrained)",
            path,
        )
    tf = _transformers()
    try:
        model = tf.EncodecModel.from_pretrained(str(path), local_files_only=True)
    except Exception as err:  # transformers raises many types for bad configs/weights
        raise CheckpointError(
            f"cannot load EncodecModel ({str(err).splitlines()[0] if str(err) else err!r})", path
        ) from None
    return EncodecCodec(model, num_codebooks)


# ---------------------------------------------------------------------- SEANet (encodec / AudioCraft) -> HF
_RENAMES = [
    (re.compile(r"^(encoder|decoder)\.model\."), r"\1.layers."),
    (re.compile(r"\.convtr\.convtr\."), ".conv."),
    (re.compile(r"\.convtr\.norm\."), ".norm."),
    (re.compile(r"\.conv\.conv\."), ".conv."),
    (re.compile(r"\.conv\.norm\."), ".norm."),
    (re.compile(r"\.weight_g$"), ".parametrizations.weight.original0"),
    (re.compile(r"\.weight_v$"), ".parametrizations.weight.original1"),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\."), r"quantizer.layers.\1.codebook."),
]


def seanet_to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``encodec``/AudioCraft EnCodec state dict to transformers' ``EncodecModel`` names."""
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in _RENAMES:
            new = pattern.sub(repl, new)
        out[new] = value
    return out


def hf_config_from_seanet(
    *,
    sample_rate: int,
    channels: int,
    dimension: int,
    n_filters: int,
    n_residual_layers: int,
    ratios: list[int],
    n_q: int,
    bins: int,
    causal: bool,
    norm: str,
    pad_mode: str,
    true_skip: bool,
    compress: int,
    lstm: int,
    kernel_size: int = 7,
    residual_kernel_size: int = 3,
    last_kernel_size: int = 7,
    dilation_base: int = 2,
    trim_right_ratio: float = 1.0,
) -> Any:
    """An ``EncodecConfig`` for a SEANet/RVQ EnCodec described by its (AudioCraft-named) parameters."""
    tf = _transformers()
    hop = math.prod(ratios)
    frame_rate = math.ceil(sample_rate / hop)
    nbits = math.ceil(math.log2(bins))
    # transformers derives the quantizer count from the largest bandwidth: aim half a codebook above n_q
    bandwidth = (n_q + 0.5) * frame_rate * nbits / 1000
    return tf.EncodecConfig(
        target_bandwidths=[bandwidth],
        sampling_rate=sample_rate,
        audio_channels=channels,
        normalize=False,
        chunk_length_s=None,
        overlap=None,
        hidden_size=dimension,
        num_filters=n_filters,
        num_residual_layers=n_residual_layers,
        upsampling_ratios=list(ratios),
        norm_type=norm,
        kernel_size=kernel_size,
        last_kernel_size=last_kernel_size,
        residual_kernel_size=residual_kernel_size,
        dilation_growth_rate=dilation_base,
        use_causal_conv=causal,
        pad_mode=pad_mode,
        compress=compress,
        num_lstm_layers=lstm,
        trim_right_ratio=trim_right_ratio,
        codebook_size=bins,
        codebook_dim=dimension,
        use_conv_shortcut=not true_skip,
    )


def build_from_seanet_state(
    state: dict[str, torch.Tensor], hf_config: Any, source: Path, num_codebooks: int | None
) -> EncodecCodec:
    """Instantiate ``EncodecModel(hf_config)``, load the renamed ``state`` strictly, wrap it."""
    tf = _transformers()
    if hf_config.norm_type not in ("weight_norm", "time_group_norm"):
        raise CheckpointError(
            f"SEANet norm {hf_config.norm_type!r} is not supported (weight_norm, time_group_norm)", source
        )
    try:  # every weight is overwritten below: skip transformers' (slow) random initialisation
        from transformers.initialization import no_init_weights
    except ImportError:
        no_init_weights = contextlib.nullcontext
    with no_init_weights():
        model = tf.EncodecModel(hf_config)
    renamed = seanet_to_hf_state_dict(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"weights do not match the stored EnCodec configuration (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]})",
            source,
        )
    bad = [k for k in expected if expected[k].shape != renamed[k].shape]
    if bad:
        raise CheckpointError(
            f"weight shapes do not match the configuration: {bad[0]} is "
            f"{tuple(renamed[bad[0]].shape)}, expected {tuple(expected[bad[0]].shape)}",
            source,
        )
    model.load_state_dict({k: v.float() for k, v in renamed.items()}, strict=True)
    return EncodecCodec(model, num_codebooks)
