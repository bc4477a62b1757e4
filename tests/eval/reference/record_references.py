"""Record the reference vectors of references.npz from the reference implementations (run once, by hand).

Some references cannot be installed beside our torch: torchaudio (its wheel pins another torch and its
compiled extension does not load with ours) and av-benchmark's VGGish frontend (a repository, not a
package). This script runs their own code on deterministic inputs and stores inputs and outputs, so
that tests/eval/test_reference_parity.py can compare our implementations against them offline.

How references.npz was made (December 2026, numpy 2.4, torch 2.13 CPU):

    pip install --no-deps --target /tmp/ta torchaudio==2.11.0
    git -C <av-benchmark clone> show 050a5cd:av_bench/vggish/mel_features.py > /tmp/mel_features.py
    python tests/eval/reference/record_references.py --torchaudio /tmp/ta/torchaudio \
        --mel-features /tmp/mel_features.py

torchaudio's package import loads its compiled extension, which fails with our torch, so the pure-torch
functions needed here are taken from its source files with ``ast`` and run as they are (nothing of them
is kept in this repository; only their outputs are).
"""

from __future__ import annotations

import argparse
import ast
import math
import types
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

OUT = Path(__file__).with_name("references.npz")

RESAMPLE_CASES = ((44100, 16000), (48000, 16000), (22050, 32000), (16000, 32000), (44100, 32000))


def _functions_from(source_file: Path, names: list[str], namespace: dict) -> types.SimpleNamespace:
    """Run the top-level ``def``s called ``names`` of a source file in ``namespace`` (no package import)."""
    tree = ast.parse(source_file.read_text())
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    missing = set(names) - {node.name for node in wanted}
    if missing:
        raise SystemExit(f"{source_file}: functions not found: {sorted(missing)}")
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(source_file), "exec"), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in names})


def signal(rate: int, seconds: float = 0.05, seed: int = 0) -> np.ndarray:
    """Noise plus three tones: broadband (tests the anti-aliasing) and tonal (tests the passband)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    tones = sum(0.2 * np.sin(2 * np.pi * f * t + k) for k, f in enumerate((440.0, 2500.0, 6100.0)))
    return (0.1 * rng.standard_normal(t.size) + tones).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchaudio", type=Path, required=True, help="the torchaudio package folder")
    parser.add_argument("--mel-features", type=Path, required=True, help="av-benchmark's mel_features.py")
    args = parser.parse_args()
    arrays: dict[str, np.ndarray] = {}

    namespace = {
        "torch": torch,
        "math": math,
        "warnings": warnings,
        "Optional": Optional,
        "Tensor": torch.Tensor,
        "Tuple": tuple,
        "_CPU": torch.device("cpu"),
    }
    fns = _functions_from(
        args.torchaudio / "functional" / "functional.py",
        ["_get_sinc_resample_kernel", "_apply_sinc_resample_kernel"],
        namespace,
    )
    for orig, new in RESAMPLE_CASES:
        x = signal(orig, seed=orig + new)
        g = math.gcd(orig, new)
        # as torchaudio.transforms.Resample (what av-benchmark calls): the kernel in float32
        kernel, width = fns._get_sinc_resample_kernel(orig, new, g, dtype=None)
        y = fns._apply_sinc_resample_kernel(torch.from_numpy(x)[None], orig, new, g, kernel, width)[0]
        arrays[f"resample_in_{orig}_{new}"] = x
        arrays[f"resample_out_{orig}_{new}"] = y.numpy().astype(np.float32)

    kaldi = _functions_from(
        args.torchaudio / "compliance" / "kaldi.py",
        ["mel_scale", "mel_scale_scalar", "inverse_mel_scale", "vtln_warp_freq", "vtln_warp_mel_freq", "get_mel_banks"],
        dict(namespace),
    )
    # PaSST's AugmentMelSTFT: get_mel_banks(128, 1024, 32000, 0, 15000, vtln 100, -500, 1.0)
    banks, _ = kaldi.get_mel_banks(128, 1024, 32000.0, 0.0, 15000.0, 100.0, -500.0, 1.0)
    arrays["kaldi_banks_passt"] = banks.numpy().astype(np.float32)

    mel = {"np": np, "__name__": "mel_features"}
    source = args.mel_features.read_text().replace("import resampy\n", "")  # resampling is not used here
    source = source.replace("import torch\n", "import torch as torch\n")
    exec(compile(source, str(args.mel_features), "exec"), mel)
    arrays["vggish_mel_matrix"] = mel["spectrogram_to_mel_matrix"](
        num_mel_bins=64,
        num_spectrogram_bins=257,
        audio_sample_rate=16000,
        lower_edge_hertz=125.0,
        upper_edge_hertz=7500.0,
    ).astype(np.float32)
    x = signal(16000, seconds=0.5, seed=7).astype(np.float64)
    arrays["vggish_logmel_in"] = x.astype(np.float32)
    arrays["vggish_logmel_out"] = mel["log_mel_spectrogram"](
        x,
        audio_sample_rate=16000,
        log_offset=0.01,
        window_length_secs=0.025,
        hop_length_secs=0.010,
        num_mel_bins=64,
        lower_edge_hertz=125.0,
        upper_edge_hertz=7500.0,
    ).astype(np.float32)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {sorted(arrays)}")


if __name__ == "__main__":
    main()
