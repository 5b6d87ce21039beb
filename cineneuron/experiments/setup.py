"""The simulated study behind `cn experiment`: worlds, store and one trained model per variant.

One seed = one world (kinds held out of its training segments), two external clips-only worlds
(every kind, other seeds) ingested as extra memories, and the Brain Model trained once per
training variant. Rows that only change retrieval, the pool or the input reuse these models.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from cineneuron.config import RootConfig, load_config

HOLDOUT = ["bus", "cat", "laptop"]  # as in the demo: each keeps a sibling in training
EXTERNAL = ("synth-ext1", "synth-ext2")
MAIN = "synth"

# Training variants (train.use_action / use_cls): the paper's Tab. 4 and S11 rows.
VARIANTS = {
    "base": {"train.use_action": False, "train.use_cls": False},  # InfoNCE img + text only
    "cls": {"train.use_action": False, "train.use_cls": True},  # + category loss
    "act": {"train.use_action": True, "train.use_cls": False},  # action loss, no category
    "full": {"train.use_action": True, "train.use_cls": True},
}


@dataclass(frozen=True)
class Scale:
    """World and training size; `quick` is what the test runs."""

    clips: int
    voxels: int
    frame_size: int
    ext_clips: int
    epochs: int
    stage2_epochs: int


QUICK = Scale(clips=150, voxels=1000, frame_size=48, ext_clips=30, epochs=15, stage2_epochs=2)
FULL = Scale(clips=450, voxels=2000, frame_size=48, ext_clips=90, epochs=30, stage2_epochs=4)


def seed_config(work: Path, scale: Scale, variant: str, seed: int) -> RootConfig:
    over = {"store.uri": str(work / "store"), "train.runs_dir": str(work / "runs" / variant),
            "train.epochs": scale.epochs, "train.stage2_epochs": scale.stage2_epochs, "train.batch_size": 64,
            "train.seed": seed, "train.val_every": scale.epochs, "train.checkpoint_every": scale.epochs, "decode.top_k": 5, "fmri.cc2017.n_tr": 2,
            # Every voxel, silent ones included: with 4-12 training runs the reliability t-test keeps
            # a handful of voxels, too few for the interpretation check (NOTES.md).
            "fmri.cc2017.selection.method": "all", **VARIANTS[variant]}
    return load_config(None, over)


@dataclass
class SeedSetup:
    seed: int
    work: Path
    store: object
    cfgs: dict[str, RootConfig]
    timings: dict = field(default_factory=dict)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def build_seed(work: Path, seed: int, scale: Scale, variants: list[str], log=print) -> SeedSetup:
    from cineneuron.ingest.clips import IngestOptions, ingest_clips
    from cineneuron.ingest.fmri import ingest_subject
    from cineneuron.sources import get_source
    from cineneuron.sources.synth import generate
    from cineneuron.store import Store
    from cineneuron.train.stage1 import train_stage1
    from cineneuron.train.stage2 import train_stage2

    work = Path(work)
    cfgs = {v: seed_config(work, scale, v, seed) for v in variants}
    cfg = next(iter(cfgs.values()))
    timings = {}
    t = time.perf_counter()
    generate(str(work / "world"), size="demo", clips=scale.clips, voxels=scale.voxels, frame_size=scale.frame_size,
             subjects=1, seed=seed, holdout_kinds=HOLDOUT)
    for j, name in enumerate(EXTERNAL):  # every kind, other seeds: memories the model never trained on
        generate(str(work / name), size="demo", clips=scale.ext_clips, frame_size=scale.frame_size, subjects=0,
                 seed=1000 * (seed + 1) + j)
    timings["synth"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    store = Store.create(cfg.store.uri, "classic")
    opts = IngestOptions(batch_size=cfg.encoders.batch_size, backend=cfg.encoders.video_backend)
    ingest_clips(store, get_source("synth")(str(work / "world")), opts)
    for name in EXTERNAL:
        ingest_clips(store, get_source("synth")(str(work / name), source_name=name, split="pool"), opts)
    ingest_subject(store, "synth", str(work / "world"), "1", cfg)
    timings["ingest"] = round(time.perf_counter() - t, 1)
    for v, c in cfgs.items():
        t = time.perf_counter()
        train_stage1(store, c, "1", with_ridge=False)
        train_stage2(store, c, "1")
        timings[f"train_{v}"] = round(time.perf_counter() - t, 1)
        log(f"[experiment] seed {seed}: trained {v} in {timings[f'train_{v}']:.0f} s")
    return SeedSetup(seed, work, store, cfgs, timings)
