"""Training throughput: batches streamed from the store against the same batches from memory.

    python bench/train_bench.py [--samples 4096] [--voxels 4000]

Same model, same steps; the only difference is where batches come from. Target ratio >= 0.9:
the loader must not be the bottleneck.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _pool import bench_store, random_rows, tmpdir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--voxels", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    import torch

    from cineneuron.brain.data import StoreBatches, load_targets
    from cineneuron.brain.model import BrainModelConfig, SubjectSpec, TargetDims, create_brain_model
    from cineneuron.brain.mlp import MLPConfig
    from cineneuron.config import TrainConfig
    from cineneuron.train.loop import Schedule, Stage1Trainer
    from cineneuron.schemas.records import FmriBatch

    rng = np.random.default_rng(0)
    store = bench_store(tmpdir("cn-train-bench-"))
    n_clips = a.samples // 2
    rows = random_rows(n_clips, 0, rng)
    store.upsert_clips(rows)
    ids = [r.clip_id for r in rows]
    store.register_subject("bench", "1", n_tr=1, n_voxels=a.voxels, mask=None, mask_hash="-", qc={})
    for rep in (0, 1):
        vox = rng.normal(size=(n_clips, 1, a.voxels)).astype(np.float32)
        store.add_fmri("bench", "1", FmriBatch([f"s{i}-{rep}" for i in range(n_clips)], ids, ["train"] * n_clips,
                                              np.full(n_clips, rep), np.arange(n_clips), vox))
    targets = load_targets(store, ids)
    stream = StoreBatches(store, "bench", "1", targets, batch_size=a.batch_size)
    memory = {e: list(stream(e)) for e in range(2)}  # the very same batches, already in memory

    def run(source) -> float:
        torch.manual_seed(0)
        cfg = BrainModelConfig(subjects={"1": SubjectSpec(n_tr=1, n_voxels=a.voxels)},
                               targets=TargetDims.from_preset(store.preset), mlp=MLPConfig(hidden=512, n_blocks=2, token_dim=64))
        steps = stream.n_batches(0)
        tr = Stage1Trainer(create_brain_model(cfg, seed=0),
                           TrainConfig(epochs=a.epochs, batch_size=a.batch_size, device="cpu"),
                           Schedule(a.epochs * steps))
        t = time.perf_counter()
        tr.fit(source)
        return tr.step * a.batch_size / (time.perf_counter() - t)

    run(lambda e: memory[e % 2])  # warm-up
    mem = run(lambda e: memory[e % 2])
    st = run(stream)
    print(f"stage-1 training, MLP 512x2, {a.voxels} voxels, batch {a.batch_size}, {a.epochs} epochs of {n_clips} samples:")
    print(f"  from memory  {mem:8.1f} samples/s")
    print(f"  from store   {st:8.1f} samples/s (streamed fMRI + targets joined per batch)")
    print(f"  ratio store/memory = {st / mem:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
