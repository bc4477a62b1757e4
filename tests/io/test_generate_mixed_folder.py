"""`foleygen generate` on a folder of mixed real-world-like files, with no flags beyond input and output."""

import json
from fractions import Fraction

import torch
from media_factory import make_media

from foleygen.cli import main
from foleygen.io import probe


def test_generate_mixed_folder_needs_no_flags(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    make_media(folder / "phone.mp4", fps=30, duration=0.5, size=(32, 24), rotation=90, audio_rate=44100)
    make_media(folder / "screen_vfr.mp4", fps=30, duration=0.5, times=[0.0, 0.05, 0.07, 0.2, 0.33, 0.41], size=(40, 30))
    make_media(folder / "no_audio_ntsc.mkv", fps=Fraction(30000, 1001), duration=0.4, size=(7, 5))
    make_media(
        folder / "stereo_48k.mov",
        fps=24,
        duration=0.45,
        size=(36, 20),
        audio_rate=48000,
        audio_channels=2,
        audio_codec="aac",
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["generate", str(folder), "-o", str(tmp_path / "out"), "--model", "debug", "--json", "-q"])
    finally:
        torch.set_num_threads(threads)
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary["failed"]
    assert len(summary["generated"]) == 4
    for source in folder.iterdir():
        wav, mp4 = tmp_path / "out" / f"{source.stem}.wav", tmp_path / "out" / f"{source.stem}.mp4"
        src = probe(source)
        assert abs(probe(wav).duration - src.duration) < 1e-3  # exactly as long as the video
        muxed = probe(mp4)
        assert muxed.has_video and muxed.has_audio
        # Rotation is kept (sizes as displayed). A codec mp4 cannot carry (FFV1) is re-encoded to H.264,
        # whose 4:2:0 chroma needs even sides: odd sizes lose their last row/column then.
        assert abs(muxed.width - src.width) <= 1 and abs(muxed.height - src.height) <= 1
