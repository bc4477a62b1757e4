"""Our compact codec: an STFT-domain autoencoder with residual vector quantisation, trainable on a CPU.

Design (DESIGN.md's feasibility findings): a waveform-domain strided-conv codec trained from scratch
collapsed on this budget, an STFT-domain one did not. So the encoder reads a log-magnitude STFT
(``n_fft`` 320, hop 80 at 16 kHz = 200 STFT frames/s), residual conv blocks and two stride-2 convs bring
it to 50 Hz, and a :class:`~foleygen.codecs.rvq.ResidualVectorQuantizer` (4 x 1024, EMA) discretises
it. The decoder mirrors the encoder with transposed convs and predicts, per STFT bin, a log-magnitude
and a phase direction (two numbers normalised to a unit phasor, which has no 2*pi wrap-around), and
an inverse STFT makes the waveform. All convs are non-causal but finite, so long inputs are encoded
in chunks with enough context to give exactly the codes of a one-shot encode.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.checkpoint import build_from_config, load_checkpoint_dir, save_checkpoint_dir
from foleygen.codecs.base import AudioCodec
from foleygen.codecs.rvq import QuantizerOutput, ResidualVectorQuantizer
from foleygen.config import from_dict, to_dict
from foleygen.errors import CheckpointError, CodecError, ConfigError, check_counts

CODEC_TYPE = "foleygen-compact-codec"


@dataclass
class CompactCodecConfig:
    """Hyper-parameters of :class:`CompactCodec` (defaults: 16 kHz mono, 50 Hz, 4 x 1024 codes).

    Attributes:
        sample_rate / channels: audio format.
        n_fft / stft_hop: STFT analysis; ``frame_rate = sample_rate / (stft_hop * prod(strides))``.
        strides: temporal down-sampling of the STFT frames in the encoder (mirrored in the decoder).
        hidden: conv channels. res_blocks: residual blocks per resolution. latent_dim: D of the codes.
        num_codebooks / codebook_size: K and N of the RVQ. ema_decay, kmeans_iters: RVQ settings;
            dead_threshold: entries used less than this fraction of the average are restarted.
        quantizer_dropout: train with a random number of codebooks (enables fewer codebooks at inference).
        phase_input: also feed the encoder the power-law compressed complex STFT (``|S|^0.3 e^{i phi}``,
            real and imaginary parts), so that codes can carry phase, not only magnitudes.
        chunk_seconds / context_seconds: long inputs are encoded/decoded in pieces of this size.
    """

    sample_rate: int = 16000
    channels: int = 1
    n_fft: int = 320
    stft_hop: int = 80
    strides: tuple[int, ...] = (2, 2)
    hidden: int = 128
    res_blocks: int = 2
    latent_dim: int = 128
    num_codebooks: int = 4
    codebook_size: int = 1024
    ema_decay: float = 0.99
    dead_threshold: float = 0.05
    kmeans_iters: int = 10
    quantizer_dropout: bool = False
    phase_input: bool = False
    chunk_seconds: float = 30.0
    context_seconds: float = 1.0

    def __post_init__(self) -> None:
        check_counts(
            "CompactCodecConfig",
            num_codebooks=self.num_codebooks,
            res_blocks=self.res_blocks,
            strides=len(self.strides),
        )
        if self.n_fft < 2 or self.stft_hop < 1 or self.stft_hop > self.n_fft:
            raise ConfigError(f"CompactCodecConfig: need 1 <= stft_hop <= n_fft, got {self.stft_hop}, {self.n_fft}")
        if any(s < 1 for s in self.strides):
            raise ConfigError(f"CompactCodecConfig.strides must be positive, got {self.strides}")
        if self.sample_rate % self.hop_length:
            raise ConfigError(
                f"CompactCodecConfig: sample_rate {self.sample_rate} is not a multiple of the hop {self.hop_length}"
            )

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame."""
        return self.stft_hop * math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.hop_length


class ResBlock(nn.Module):
    """``x + conv1x1(act(conv3_dilated(act(x))))`` on ``[B, H, N]``; keeps the length."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, N] -> [B, H, N]``."""
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


def _res_stack(channels: int, count: int) -> nn.Sequential:
    # growing dilations (1, 3, 9, ...) widen the receptive field cheaply
    return nn.Sequential(*(ResBlock(channels, 3 ** (i % 3)) for i in range(count)))


class CompactCodec(AudioCodec):
    """STFT-domain conv autoencoder + RVQ; see the module docstring and ``docs/codecs.md``.

    ``encode(wav [B, C, S]) -> codes [B, K, ceil(S / hop)]``; ``decode(codes [B, K, T]) -> wav [B, C, T * hop]``.
    ``num_codebooks`` may be lowered after construction (to use the first k codebooks only).
    """

    def __init__(self, config: CompactCodecConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CompactCodecConfig()
        self.sample_rate = config.sample_rate
        self.channels = config.channels
        self.frame_rate = config.frame_rate
        self.num_codebooks = config.num_codebooks
        self.max_num_codebooks = config.num_codebooks
        self.cardinality = config.codebook_size
        bins = config.n_fft // 2 + 1
        self.num_bins = bins
        h = config.hidden
        in_ch = config.channels * bins * (3 if config.phase_input else 1)
        enc: list[nn.Module] = [nn.Conv1d(in_ch, h, 7, padding=3), _res_stack(h, config.res_blocks)]
        for s in config.strides:
            # kernel 2s, stride s, padding s//2: exactly N/s frames out for N divisible by s
            enc += [nn.GELU(), nn.Conv1d(h, h, 2 * s, stride=s, padding=s // 2), _res_stack(h, config.res_blocks)]
        enc += [nn.GELU(), nn.Conv1d(h, config.latent_dim, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = ResidualVectorQuantizer(
            config.latent_dim,
            config.num_codebooks,
            config.codebook_size,
            decay=config.ema_decay,
            dead_threshold=config.dead_threshold,
            kmeans_iters=config.kmeans_iters,
            quantizer_dropout=config.quantizer_dropout,
        )
        dec: list[nn.Module] = [nn.Conv1d(config.latent_dim, h, 7, padding=3), _res_stack(h, config.res_blocks)]
        for s in reversed(config.strides):
            dec += [
                nn.GELU(),
                nn.ConvTranspose1d(h, h, 2 * s, stride=s, padding=s // 2),
                _res_stack(h, config.res_blocks),
            ]
        # per channel and bin: log-magnitude, and two numbers for the phase direction
        dec += [nn.GELU(), nn.Conv1d(h, config.channels * bins * 3, 7, padding=3)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    # ------------------------------------------------------------------ building blocks
    def _stft_frames(self, num_frames: int) -> int:
        return num_frames * math.prod(self.config.strides)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, C, T * hop]`` -> log-magnitude STFT ``[B, C * bins (x3 with phase_input), T * prod(strides)]``."""
        b, c, s = wav.shape
        spec = self.stft(wav.reshape(b * c, s))
        n = spec.shape[-1]
        mag = spec.abs()
        # log compresses the dynamic range (as hearing does); the offset/scale keep values near [-1, 1]
        feats = (torch.log(mag + 1e-4) + 4.0) / 4.0
        if self.config.phase_input:
            # |S|^0.3 e^{i phi}: keeps phase where there is energy, fades it in the noise floor
            comp = spec * (mag + 1e-8).pow(-0.7)
            feats = torch.stack([feats, 2.0 * comp.real, 2.0 * comp.imag], dim=1)  # [B*C, 3, bins, N]
            return feats.reshape(b, c * 3 * self.num_bins, n)
        return feats.reshape(b, c * self.num_bins, n)

    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, C, S]`` -> continuous latent ``[B, D, ceil(S / hop)]`` (pads S to whole frames)."""
        hop = self.hop_length
        t = -(-wav.shape[-1] // hop)
        wav = F.pad(wav, (0, t * hop - wav.shape[-1]))
        return self.encoder(self.features(wav))

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, S]`` -> complex STFT ``[B, bins, S // stft_hop]`` in the codec's own framing."""
        spec = torch.stft(
            wav.float(), self.config.n_fft, self.config.stft_hop, window=self.window, center=True, return_complex=True
        )
        return spec[..., : wav.shape[-1] // self.config.stft_hop]  # centre=True gives one extra frame

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of :meth:`stft`: complex ``[B, bins, N]`` -> ``wav [B, length]``."""
        # centre=True inverse needs N + 1 frames for N * stft_hop samples: repeat the last frame
        spec = torch.cat([spec, spec[..., -1:]], dim=-1)
        return torch.istft(
            spec, self.config.n_fft, self.config.stft_hop, window=self.window, center=True, length=length
        )

    def decode_spectrum(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``[B, D, T]`` -> the decoder's ``(magnitude, phasor)``, each ``[B * C, bins, N]``.

        The phasor has unit length except where the decoder's two phase numbers are both near 0 (an
        epsilon keeps the division finite there).
        """
        b = z.shape[0]
        out = self.decoder(z).reshape(b * self.channels, 3, self.num_bins, -1)
        # clamp: exp of an untrained network's output must not overflow
        mag = (torch.exp(out[:, 0].clamp(max=6.0)) - 1e-4).clamp(min=0.0)
        re, im = out[:, 1], out[:, 2]
        norm = torch.sqrt(re * re + im * im + 1e-8)
        return mag, torch.complex(re / norm, im / norm)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, D, T]`` -> ``wav [B, C, T * hop]`` via predicted magnitude + phase and an inverse STFT."""
        return self.synthesize(z)[0]

    def synthesize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``[B, D, T]`` -> ``(wav [B, C, T * hop], the decoder's magnitudes [B * C, bins, N])``."""
        b, _, t = z.shape
        mag, phasor = self.decode_spectrum(z)
        return self.istft(mag * phasor, t * self.hop_length).reshape(b, self.channels, -1), mag

    def forward(
        self, wav: torch.Tensor, quantize: bool = True, n_q: int | None = None
    ) -> tuple[torch.Tensor, QuantizerOutput | None]:
        """Training pass: ``wav [B, C, S]`` -> ``(reconstruction [B, C, T * hop], quantiser output or None)``.

        ``quantize=False`` bypasses the RVQ (the unquantised warm-up that gives k-means real latents).
        """
        recon, q, _ = self.reconstruct(wav, quantize, n_q)
        return recon, q

    def reconstruct(
        self, wav: torch.Tensor, quantize: bool = True, n_q: int | None = None
    ) -> tuple[torch.Tensor, QuantizerOutput | None, torch.Tensor]:
        """As :meth:`forward`, plus the decoder's own magnitudes ``[B * C, bins, N]`` (before the inverse STFT).

        Training may compare those magnitudes with the input's STFT directly (``codec_train.w_spectrum``):
        the waveform losses see them only through the decoder's phases, whose overlap-add partly cancels them.
        """
        z = self.encode_latent(wav)
        q = None
        if quantize:
            q = self.quantizer(z, n_q)
            z = q.quantized
        elif self.training:
            self.quantizer.observe(z)
        recon, mag = self.synthesize(z)
        return recon, q, mag

    # ------------------------------------------------------------------ the AudioCodec contract
    def _context_frames(self) -> tuple[int, int]:
        chunk = max(1, round(self.config.chunk_seconds * self.frame_rate))
        context = max(1, round(self.config.context_seconds * self.frame_rate))
        return chunk, context

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, C, S]`` float -> ``codes [B, K, ceil(S / hop)]`` int64 (chunked for long inputs)."""
        self.check_audio(wav)
        if wav.shape[-1] == 0:
            raise CodecError("cannot encode empty audio (0 samples)")
        chunk, context = self._context_frames()
        return self.chunked_encode(
            wav.float(), lambda x: self.quantizer.encode(self.encode_latent(x), self.num_codebooks), chunk, context
        )

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, K, T]`` int64 -> ``wav [B, C, T * hop]`` float (chunked for long inputs)."""
        self.check_codes(codes)
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], self.channels, 0)
        chunk, context = self._context_frames()
        return self.chunked_decode(codes.long(), lambda c: self.decode_latent(self.quantizer.decode(c)), chunk, context)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (the weights and the codebook buffers)."""
        config = {"codec_type": CODEC_TYPE, "config": to_dict(self.config)}
        state = {k: v for k, v in self.state_dict().items()}
        return save_checkpoint_dir(directory, config, state)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> CompactCodec:
        """Load a directory written by :meth:`save_pretrained`."""
        config, state = load_checkpoint_dir(directory)
        if config.get("codec_type") != CODEC_TYPE:
            raise CheckpointError(
                f"config.json is not a compact codec (codec_type {config.get('codec_type')!r})", directory
            )
        section = config.get("config", {})
        model = build_from_config(lambda: cls(from_dict(CompactCodecConfig, section, "config")), "config", directory)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # a tensor of another shape than the config builds
            sizes = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
            detail = sizes[0] if sizes else " ".join(str(err).split())[:200]
            raise CheckpointError(f"weights do not match the config ({detail})", directory) from None
        if missing or unexpected:
            raise CheckpointError(
                f"weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})", directory
            )
        if not model.quantizer.initialised:
            raise CheckpointError("codebooks were never initialised (saved before quantised training)", directory)
        return model.eval()
