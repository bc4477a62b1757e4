import sys
from pathlib import Path

# The stand-in task lives beside these tests; subprocess runs find it through PYTHONPATH.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prepared_cache(tmp_path_factory):
    """(cache_dir, codec_dir): 6 generated clips (5 train, 1 val) through `foleygen prepare` (compact/frames)."""
    from media_helpers import tiny_codec_dir, write_video

    from foleygen.cli import main

    root = tmp_path_factory.mktemp("lm_data")
    rows = ["path,split"]
    for i in range(6):
        write_video(root / f"c{i}.mp4", seconds=1.0, freq=300 + 80 * i)
        rows.append(f"c{i}.mp4,{'val' if i == 5 else 'train'}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    codec = tiny_codec_dir(root / "codec")
    cache = root / "cache"
    rc = main(
        [
            "prepare",
            str(root / "m.csv"),
            "--codec",
            str(codec),
            "--visual",
            "compact",
            "--visual-fps",
            "10",
            "--image-size",
            "16",
            "--duration",
            "1.0",
            "-o",
            str(cache),
            "-q",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    return cache, codec
