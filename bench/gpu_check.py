"""The GPU check: the project's real stage 2, a generation and a paper Brain Model step, at full size.

    python bench/gpu_check.py                 # on a GPU: random full-size weights, no download (< 8 min)
    python bench/gpu_check.py --toy           # CPU: the same code path at toy size (what CI runs)

With random weights (`decode.wan_random_init=wan2.1-t2v-1.3b`, `brain.preset=paper`) it builds a
small store of random paper-width embeddings, then runs through the project's own code:

1. `train_stage1` on 144 samples at batch 144 (one optimiser step of the paper Brain Model);
2. `train_stage2_wan` (what `cn train --stage 2 --decoder wan` runs) for 3 steps at 57x624x624,
   batch 2, micro-batch 1, gradient checkpointing, LoRA r16 in bf16, the memory estimate first;
3. `run_query` with `--decoder wan` (what `cn query` runs): one generation at 57x624x624, 10 steps.

It prints one JSON object: peak memory per phase (the counter is reset only between phases),
s/step, and s/clip measured at 10 steps and extrapolated to 50 (marked as extrapolated).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAPER_DIMS = {"image": 1024, "text": 1024, "action": 768, "cond": 4096}
TOY_DIMS = {"image": 24, "text": 20, "action": 28, "cond": 12}


def _register_bench_encoders() -> None:
    """Named encoders for the store's preset; nothing is encoded (rows hold random vectors)."""
    from cineneuron.encoders.registry import Encoder, register, registered

    if "bench-image" in registered():
        return
    for m in ("image", "text", "action", "cond"):
        register(f"bench-{m}")(type(f"Bench{m.title()}", (Encoder,), {"modality": m}))


def _jpegs(rng, n=4, size=32) -> list[bytes]:
    from PIL import Image

    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


def build_store(root: Path, dims: dict, n_frames: int, subjects: dict, n_voxels: int, seed: int = 0):
    """A store with random unit embeddings; subjects: {id: (n_train, n_test)}, each sample its own clip."""
    from cineneuron.schemas.records import FmriBatch, clip_id
    from cineneuron.store import EncodedClip, Store

    _register_bench_encoders()
    preset = {"name": "bench-paper", "frames": {"n": n_frames, "size": 32},
              "encoders": {m: {"name": f"bench-{m}", "dim": d} for m, d in dims.items()}}
    (root / "preset.json").write_text(json.dumps(preset))
    store = Store.create(str(root / "store"), str(root / "preset.json"))
    store.set_meta("empty_cond", json.dumps({"shape": [1, dims["cond"]]}), np.zeros((1, dims["cond"]), np.float16).tobytes())
    rng = np.random.default_rng(seed)
    for sub, (n_train, n_test) in subjects.items():
        clips = []
        for i in range(n_train + n_test):
            split = "train" if i < n_train else "test"
            start = 2.0 * i
            clips.append(EncodedClip(
                clip_id=clip_id(f"bench{sub}", "v.mp4", start, start + 2), source=f"bench{sub}", video="v.mp4",
                video_uri="/nonexistent/v.mp4", start_s=start, end_s=start + 2, split=split, caption=f"clip {i}",
                labels=["animal"] if i % 2 else ["vehicle"], frames=_jpegs(rng),
                img_frames=rng.normal(size=(n_frames, dims["image"])).astype(np.float32),
                txt=rng.normal(size=dims["text"]).astype(np.float32), act=rng.normal(size=dims["action"]).astype(np.float32),
                cond=rng.normal(size=(8, dims["cond"])).astype(np.float16)))
        store.upsert_clips(clips)
        store.register_subject("bench", sub, n_tr=1, n_voxels=n_voxels, mask=None, mask_hash="bench", qc={})
        n = len(clips)
        store.add_fmri("bench", sub, FmriBatch(
            sample_id=[f"{sub}-{i}" for i in range(n)], clip_id=[c.clip_id for c in clips], split=[c.split for c in clips],
            repeat=np.array([0 if c.split == "train" else -1 for c in clips]), tr_index=np.arange(n),
            voxels=rng.normal(size=(n, 1, n_voxels)).astype(np.float32)))
    return store


class _Phase:
    """Wall time and peak device memory of one phase (the peak counter is reset only here)."""

    def __init__(self, device: str):
        self.device, self.t0 = device, 0.0

    def __enter__(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_gib = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        else:
            self.peak_gib = None  # CPU: no allocator peak to read
        self.seconds = round(time.perf_counter() - self.t0, 2)


def settings(a) -> dict:
    if a.toy:
        return {"dims": TOY_DIMS, "frames": 3, "voxels": 37, "brain": "toy", "wan": {"decode.wan_toy": True},
                "F": a.frames or 9, "H": a.height or 32, "W": a.width or 32, "device": "cpu"}
    return {"dims": PAPER_DIMS, "frames": 8, "voxels": 13_824, "brain": "paper",
            "wan": {"decode.wan_random_init": "wan2.1-t2v-1.3b"}, "F": a.frames or 57, "H": a.height or 624,
            "W": a.width or 624, "device": "auto"}


def run(a) -> dict:
    from cineneuron.config import load_config
    from cineneuron.decode.reconstruct import run_query
    from cineneuron.runtime import device_report, train_runtime
    from cineneuron.train.stage1 import train_stage1
    from cineneuron.train.stage2_wan import train_stage2_wan

    s = settings(a)
    t_all = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="cn-gpu-check-"))
    store = build_store(root, s["dims"], s["frames"], {"1": (a.stage1_batch, 4), "2": (2 * a.steps, 2)}, s["voxels"])
    base = {"brain.preset": s["brain"], "train.device": s["device"], "train.epochs": 1, "train.stage2_epochs": 1,
            "decode.decoder": "wan", "decode.num_frames": s["F"], "decode.height": s["H"], "decode.width": s["W"],
            "decode.steps": a.gen_steps, "decode.guidance_scale": 5.0, "decode.top_k": 1, "train.grad_ckpt": True,
            "train.micro_batch": 1, "train.runs_dir": str(root / "runs"), **s["wan"]}
    device = train_runtime(load_config(None, base).train)["device"]
    out = {"device": device_report(), "toy": a.toy, "size": [s["F"], s["H"], s["W"]]}

    cfg1 = load_config(None, {**base, "train.batch_size": a.stage1_batch})
    with _Phase(device) as p:  # one optimiser step of the Brain Model at batch 144 (plus its validation pass)
        r1 = train_stage1(store, cfg1, "1", with_ridge=False)
    out["stage1"] = {"batch": a.stage1_batch, "steps": r1.steps, "seconds": p.seconds, "peak_gib": p.peak_gib}

    train_stage1(store, load_config(None, {**base, "train.batch_size": 2}), "2", with_ridge=False)  # stage 2 starts here
    cfg2 = load_config(None, {**base, "train.batch_size": 2})
    stamps: list[float] = []
    progress = lambda adv, total, desc=None: stamps.append(time.perf_counter()) if adv == 1 else None  # noqa: E731
    with _Phase(device) as p:
        r2 = train_stage2_wan(store, cfg2, "2", progress=progress)
    steps = np.diff(stamps).tolist() if len(stamps) > 1 else []
    out["stage2"] = {"steps": r2["steps"], "batch": 2, "micro_batch": 1, "grad_ckpt": True, "seconds": p.seconds,
                     "s_per_step": round(float(np.mean(steps)), 2) if steps else None,  # after the first (warm-up) step
                     "peak_gib": p.peak_gib, "memory_estimate_gib": r2.get("memory_estimate_gib"),
                     "precision": r2.get("precision"), "latents": r2["latents"]}

    fmri = root / "q.npy"
    np.save(fmri, np.random.default_rng(9).normal(size=(1, 1, s["voxels"])).astype(np.float32))
    with _Phase(device) as p:
        q = run_query(store, cfg2, str(fmri), "2", out=str(root / "q.mp4"))
    out["generation"] = {"steps": a.gen_steps, "seconds": p.seconds, "peak_gib": p.peak_gib,
                         "s_per_clip_at_50_steps": round(p.seconds * 50 / a.gen_steps, 1), "extrapolated": True,
                         "note": f"measured at {a.gen_steps} steps, scaled to 50 (denoising dominates)",
                         "video": q["queries"][0]["video"]}
    out["total_seconds"] = round(time.perf_counter() - t_all, 1)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--toy", action="store_true", help="toy sizes on CPU: checks this script's code path")
    ap.add_argument("--frames", type=int), ap.add_argument("--height", type=int), ap.add_argument("--width", type=int)
    ap.add_argument("--steps", type=int, default=3, help="stage-2 optimiser steps (batch 2)")
    ap.add_argument("--gen-steps", type=int, default=10, help="denoising steps of the generation")
    ap.add_argument("--stage1-batch", type=int, default=144)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    result = run(a)
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
