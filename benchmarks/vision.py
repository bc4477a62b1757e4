"""Throughput of each visual encoder backend at real-model sizes on this machine (random weights).

Prints one JSON object: for each backend and precision, input frames encoded per second (model
forward only, after preprocessing, after one warm-up call), with the batch it used. Random weights
have the same cost as trained ones; no checkpoint is needed.

    python benchmarks/vision.py                 # all backends, fp32 and bf16
    python benchmarks/vision.py --backends clip compact --frames 64 --threads 2
    python benchmarks/vision.py --quick         # fewer frames; ImageBind-H vision included
    python benchmarks/vision.py --device cuda --frames 256
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from foleygen.machine import machine_report

# The Base size that the published CLIP ViT-B, ViT-B/16 and VideoMAE-B share (224 px input).
BASE_SIZE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224)


def build(kind: str, bf16: bool):
    import transformers

    from foleygen.vision.clip import CLIPVisualEncoder, clip_default_transform
    from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder
    from foleygen.vision.videomae import VideoMAEVisualEncoder, videomae_default_transform
    from foleygen.vision.vit import ViTVisualEncoder, vit_default_transform

    if kind == "clip_vit_b32":
        cfg = transformers.CLIPVisionConfig(**BASE_SIZE, patch_size=32, projection_dim=512)
        model = transformers.CLIPVisionModelWithProjection(cfg).eval()
        return CLIPVisualEncoder(model, clip_default_transform(), chunk_size=32, bf16=bf16)
    if kind == "vit_b16":
        cfg = transformers.ViTConfig(**BASE_SIZE, patch_size=16)
        model = transformers.ViTModel(cfg, add_pooling_layer=False).eval()
        return ViTVisualEncoder(model, vit_default_transform(), chunk_size=16, bf16=bf16)
    if kind == "videomae_b":
        cfg = transformers.VideoMAEConfig(**BASE_SIZE, patch_size=16, num_frames=16, tubelet_size=2)
        model = transformers.VideoMAEModel(cfg).eval()
        return VideoMAEVisualEncoder(model, videomae_default_transform(), chunk_size=16, bf16=bf16)
    if kind == "compact":
        enc = CompactVisualEncoder(CompactVisualConfig()).eval()
        enc.bf16 = bf16
        return enc
    if kind == "imagebind_h_vision":
        from foleygen.vision.imagebind import ImageBindConfig, ImageBindModel, ImageBindVisualEncoder

        model = ImageBindModel(ImageBindConfig(modalities=("vision",))).eval()
        return ImageBindVisualEncoder(model, chunk_size=4, bf16=bf16)
    raise SystemExit(f"unknown backend {kind}")


def run(kind: str, bf16: bool, frames: int, repeats: int, device: str) -> dict:
    enc = build(kind, bf16).to(device)
    enc.requires_grad_(False)
    x = torch.randn(1, frames, 3, enc.image_size, enc.image_size, device=device)

    def call():
        with torch.inference_mode():
            if kind == "compact" and bf16:  # compact is a plain module: autocast here
                with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                    return enc(x)
            return enc(x)

    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    call()  # warm-up (allocator, oneDNN / cuBLAS kernels)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = call()
        sync()
        times.append(time.perf_counter() - t0)
    best = min(times)
    params = sum(p.numel() for p in enc.parameters())
    return {
        "frames": frames,
        "features": list(out.shape[1:]),
        "params_M": round(params / 1e6, 1),
        "best_s": round(best, 4),
        "frames_per_s": round(frames / best, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backends", nargs="+", default=["compact", "clip_vit_b32", "vit_b16", "videomae_b", "imagebind_h_vision"]
    )
    ap.add_argument("--frames", type=int, default=32, help="frames per timed call (ImageBind-H uses 1/4)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--quick", action="store_true", help="16 frames, 1 repeat")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frames, repeats = (16, 1) if args.quick else (args.frames, args.repeats)
    results: dict = {
        "machine": machine_report(),
        "threads": args.threads,
        "device": args.device,
        "results": {},
    }
    if args.device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name()
    for kind in args.backends:
        for prec in args.precisions:
            n = max(4, frames // 4) if kind == "imagebind_h_vision" else frames
            if kind == "compact":
                n = frames * 16  # it is meant to see 16 clips x 100 frames per training step
            if kind == "videomae_b":
                n = max(16, (frames // 16) * 16)
            results["results"][f"{kind}/{prec}"] = run(kind, prec == "bf16", n, repeats, args.device)
            print(json.dumps({f"{kind}/{prec}": results["results"][f"{kind}/{prec}"]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
