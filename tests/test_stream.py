"""Streamed generation (``FoleyGen.stream``): the offline model, frame by frame.

Invariant: for the same frames and seed, the streamed audio equals ``generate``'s (the codes equal
``generate_codes``') within 1e-5 of full scale at every chunk join, for source rates that do and do not
divide the encoder's, and clips of one or several windows.
"""

import pytest
import torch

from foleygen.api import FoleyGen
from foleygen.codecs.streaming import StreamingAudioDecoder, decode_context
from foleygen.errors import ConfigError
from foleygen.stream import FrameSampler, StreamSession


def moving_square(num_frames, h=40, w=56):
    frames = torch.zeros(num_frames, h, w, 3, dtype=torch.uint8)
    for i in range(num_frames):
        x = (i * 3) % (w - 8)
        frames[i, 10:18, x : x + 8] = 255
    return frames


@pytest.fixture(scope="module")
def model():
    return FoleyGen._debug(duration=1.0)


@pytest.mark.parametrize("fps,num_frames", [(25.0, 20), (25.0, 61), (30.0, 70), (12.0, 17)])
def test_streamed_audio_equals_offline_generation(model, fps, num_frames):
    frames = moving_square(num_frames)
    offline = model.generate([frames], seed=4, fps_of_tensors=fps)[0]
    chunks = list(model.stream(iter(frames), fps=fps, seed=4))
    assert all(c.shape[0] == model.channels and c.shape[-1] > 0 for c in chunks)
    streamed = torch.cat(chunks, dim=-1)
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max() <= 1e-5 * max(1.0, float(offline.abs().max()))
    if num_frames / fps > 1.5:
        assert len(chunks) > 3  # audio came out while frames were still going in


def test_audio_arrives_while_frames_go_in(model):
    session = StreamSession(model, fps=25.0, seed=0)
    got = []
    with model._eval_mode():
        for frame in moving_square(50):
            got.append(session.push(frame).shape[-1])
        tail = session.end().shape[-1]
    assert sum(got) > 0 and sum(got) + tail == model.sequence.with_duration(2.0).num_samples
    lat = session.latency_seconds()
    assert lat["total"] == pytest.approx(sum(v for k, v in lat.items() if k != "total"))
    assert lat["delay_pattern"] == (model.lm.num_codebooks - 1) / model.sequence.frame_rate


def test_frame_sampler_picks_the_frame_on_screen():
    s = FrameSampler(30.0, 25.0)
    out = []
    for j in range(7):
        out += [int(f) for f in s.push(torch.tensor(j))]
    out += [int(f) for f in s.end()]
    # output frame i shows source frame floor(i * 30 / 25); round(7 / 30 * 25) = 6 frames
    assert out == [0, 1, 2, 3, 4, 6]


def test_full_mask_models_refuse_to_stream():
    full = FoleyGen._debug(visual_attention="full")
    with pytest.raises(ConfigError, match="full"):
        next(iter(full.stream(iter(moving_square(5)), fps=25.0)))


def test_incremental_codec_decoding_matches_one_decode(model):
    codec = model.codec
    left, right = decode_context(codec)
    assert left >= 1 and right >= 1
    codes = torch.randint(
        0, codec.cardinality, (1, codec.num_codebooks, 120), generator=torch.Generator().manual_seed(0)
    )
    with torch.inference_mode():
        whole = codec.decode(codes)
        for sizes in ([120], [1] * 120, [7, 3, 11] * 10):
            dec, parts, i = StreamingAudioDecoder(codec), [], 0
            for n in sizes:
                parts.append(dec.push(codes[..., i : i + n]))
                i += n
            parts.append(dec.flush())
            got = torch.cat(parts, dim=-1)
            assert got.shape == whole.shape
            torch.testing.assert_close(got, whole, atol=1e-5 * float(whole.abs().max()), rtol=0)
