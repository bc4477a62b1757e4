"""read_audio / write_audio: exact sample counts, sample-exact lossless reads, sync with video, atomic writes."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest
import torch
from media_factory import make_media

from foleygen.errors import MediaError
from foleygen.io import probe, read_audio, write_audio


@pytest.mark.parametrize("name", ["a.wav", "a.flac", "a.mkv", "v.mkv", "v.mp4"])
def test_lossless_reads_are_sample_exact(media, name):
    fps = 25 if name.startswith("v") else None
    codec = "flac" if name != "a.wav" else None
    made = media(name, fps=fps, duration=0.8, audio_rate=16000, audio_channels=2, audio_codec=codec)
    expected = made.audio.astype(np.float32) / 32768.0  # PCM int16 -> float as FFmpeg does
    wav = read_audio(made.path, 16000, channels=2)
    assert wav.dtype == torch.float32 and wav.shape == (2, 12800)
    np.testing.assert_array_equal(wav.numpy(), expected)
    # start/duration slice the same samples.
    part = read_audio(made.path, 16000, channels=2, start=0.25, duration=0.1)
    np.testing.assert_array_equal(part.numpy(), expected[:, 4000:5600])
    # Mono is the mean of the channels.
    mono = read_audio(made.path, 16000)
    np.testing.assert_allclose(mono.numpy(), expected.mean(0, keepdims=True), atol=1e-7)


def test_resampled_length_is_round_duration_times_rate(media):
    made = media("a.flac", fps=None, duration=0.5, audio_rate=16000)
    for rate in (8000, 22050, 44100, 48000):
        wav = read_audio(made.path, rate)
        assert wav.shape == (1, round(0.5 * rate))
        assert float(wav.abs().max()) > 0.1
    stereo = read_audio(made.path, 22050, channels=2)
    assert stereo.shape == (2, 11025)
    torch.testing.assert_close(stereo[0], stereo[1])  # mono repeated


def test_default_duration_follows_the_video_stream(media):
    # Audio shorter than the video: zero padded; longer: trimmed.
    short = media("short.mkv", fps=10, duration=1.0, audio_rate=8000, audio_duration=0.6)
    wav = read_audio(short.path, 8000)
    assert wav.shape == (1, 8000)
    assert float(wav[0, :4800].abs().max()) > 0 and float(wav[0, 4800:].abs().max()) == 0
    long = media("long.mkv", fps=10, duration=1.0, audio_rate=8000, audio_duration=1.7)
    assert read_audio(long.path, 8000).shape == (1, 8000)
    # An explicit duration past the end pads with zeros.
    padded = read_audio(long.path, 8000, duration=2.0)
    assert padded.shape == (1, 16000) and float(padded[0, 13600:].abs().max()) == 0


def test_aac_in_mp4_length_and_content(media):
    made = media("v.mp4", fps=25, duration=1.0, audio_rate=16000)
    info = probe(made.path)
    assert info.has_audio and info.audio_sample_rate == 16000 and info.audio_channels == 1
    wav = read_audio(made.path, 16000)
    assert wav.shape == (1, 16000)
    expected = made.audio[0].astype(np.float32) / 32768.0
    # Lossy, but aligned: the decoder removes the encoder's priming samples.
    corr = np.corrcoef(wav[0, 1024:15000].numpy(), expected[1024:15000])[0, 1]
    assert corr > 0.9


def test_no_audio_stream_is_an_error(media):
    made = media("v.mp4", fps=10, duration=0.5)
    assert not probe(made.path).has_audio
    with pytest.raises(MediaError, match="no audio stream") as err:
        read_audio(made.path, 16000)
    assert str(made.path) in str(err.value)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_write_wav_round_trip(tmp_path, subtype):
    t = torch.linspace(0, 1, 4001)
    wav = torch.stack([0.5 * torch.sin(2 * torch.pi * 440 * t), 1.7 * torch.cos(2 * torch.pi * 3 * t)])
    path = tmp_path / "out.wav"
    write_audio(path, wav, 16000, subtype=subtype)
    info = probe(path)
    assert (info.audio_sample_rate, info.audio_channels) == (16000, 2)
    assert info.audio_codec == ("pcm_s16le" if subtype == "PCM_16" else "pcm_f32le")
    back = read_audio(path, 16000, channels=2)
    assert back.shape == wav.shape
    clipped = wav.clamp(-1, 1)  # 16-bit: within half a step, +1.0 saturates one step low
    atol = 1.0 / 32768 + 1e-7 if subtype == "PCM_16" else 0.0
    torch.testing.assert_close(back, clipped, atol=atol, rtol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temporary file left


def test_write_flac_round_trip(tmp_path):
    wav = torch.rand(1, 3000) * 2 - 1
    path = tmp_path / "out.flac"
    write_audio(path, wav, 8000)
    assert probe(path).audio_codec == "flac"
    back = read_audio(path, 8000)
    torch.testing.assert_close(back, wav, atol=0.5 / 32768 + 1e-7, rtol=0)
    with pytest.raises(MediaError, match="FLAC"):
        write_audio(tmp_path / "x.flac", wav, 8000, subtype="FLOAT")
    with pytest.raises(MediaError, match="extension"):
        write_audio(tmp_path / "x.mp3", wav, 8000)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    write_audio(path, torch.zeros(1, 100), 8000)
    before = path.read_bytes()

    import foleygen.io.audio as audio_mod

    class Boom(RuntimeError):
        pass

    real_from_ndarray = audio_mod.av.AudioFrame.from_ndarray
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # fail in the middle of the file
            raise Boom("disk on fire")
        return real_from_ndarray(*args, **kwargs)

    monkeypatch.setattr(audio_mod.av.AudioFrame, "from_ndarray", staticmethod(failing))
    with pytest.raises(Boom):
        write_audio(path, torch.ones(1, 30000) * 0.5, 8000)
    with pytest.raises(Boom):
        write_audio(tmp_path / "new.wav", torch.ones(1, 30000) * 0.5, 8000)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"]  # and no partial or temporary file


def test_write_bad_shapes(tmp_path):
    with pytest.raises(MediaError, match="shape"):
        write_audio(tmp_path / "x.wav", torch.zeros(2, 3, 4), 8000)
    with pytest.raises(MediaError, match="directory"):
        write_audio(tmp_path / "missing" / "x.wav", torch.zeros(1, 4), 8000)


def test_audio_starting_after_the_video_stays_in_sync(media):
    made = media("late.mkv", fps=10, duration=1.0, audio_rate=8000, audio_duration=0.5, audio_offset=0.25)
    expected = made.audio[0].astype(np.float32) / 32768.0
    wav = read_audio(made.path, 8000)
    assert wav.shape == (1, 8000)
    assert float(wav[0, :2000].abs().max()) == 0  # silence until the audio starts
    np.testing.assert_array_equal(wav[0, 2000:6000].numpy(), expected)
    assert float(wav[0, 6000:].abs().max()) == 0
    # start= counts on the same clock.
    np.testing.assert_array_equal(read_audio(made.path, 8000, start=0.5, duration=0.1)[0].numpy(), expected[2000:2800])


@pytest.mark.parametrize("name", ["long.flac", "long.wav"])
def test_far_start_seeks_and_stays_sample_exact(media, name):
    made = media(name, fps=None, duration=31.0, audio_rate=4000)
    expected = made.audio[0].astype(np.float32) / 32768.0
    part = read_audio(made.path, 4000, start=30.5, duration=0.25)
    np.testing.assert_array_equal(part[0].numpy(), expected[122000:123000])


@pytest.mark.parametrize("name", ["empty.wav", "empty.flac"])
def test_empty_waveform_makes_a_valid_file(tmp_path, name):
    path = tmp_path / name
    write_audio(path, torch.zeros(2, 0), 8000)
    info = probe(path)
    assert info.has_audio and info.audio_channels == 2 and info.duration == 0.0
    assert read_audio(path, 8000, channels=2).shape == (2, 0)


def _shifted(src, dst, seconds: float):
    """``src`` remuxed (packets copied) with every timestamp ``seconds`` later."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            shift = round(seconds / packet.time_base)
            packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def test_audio_whose_format_changes_midway_is_read_whole(tmp_path):
    """An MPEG-TS whose audio turns from 48 kHz stereo into 16 kHz mono halfway, as broadcast streams do
    (here two files one after the other, the second's timestamps following the first's). A resampler takes
    one input format: this was a ValueError from PyAV (found by the fuzzer)."""
    clip = {"duration": 1.0, "size": (32, 24), "codec": "libx264"}
    first = make_media(tmp_path / "a.ts", audio_rate=48000, audio_channels=2, **clip).path
    second = make_media(tmp_path / "b.ts", audio_rate=16000, **clip).path
    both = tmp_path / "both.ts"
    both.write_bytes(first.read_bytes() + _shifted(second, tmp_path / "b2.ts", 1.0).read_bytes())
    with av.open(str(both)) as c:  # the change is really there
        assert {(f.layout.name, f.sample_rate) for f in c.decode(audio=0)} == {("stereo", 48000), ("mono", 16000)}
    wav = read_audio(both, 16000)
    assert abs(wav.shape[-1] - 2 * 16000) <= 0.1 * 16000
    half = wav.shape[-1] // 2
    assert wav[:, : half - 1600].abs().mean() > 0.01 and wav[:, half + 1600 :].abs().mean() > 0.01
