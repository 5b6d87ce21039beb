"""Data-parallel Wan stage 2 with torchrun on CPU (gloo on the loopback), at toy size: two ranks
hold identical trainable weights (LoRA, fusion, router, Brain Model), equal to one process fed the
same global batches (slices' losses averaged, each slice's flow-matching noise drawn from the
generator its rank uses), and the run is written once."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TOY_DIMS, random_clips, toy_preset_dict

from cineneuron.train.distributed import Rank, free_port, shard_batch

HELPERS = Path(__file__).parent / "helpers"
N_TRAIN, N_TEST, V, N_TR, WORLD = 30, 3, 37, 2, 2  # v0 (10 clips) is the router fold at holdout 0.3, seed 0
OVER = {
    "train.epochs": 1, "train.batch_size": 8, "train.stage2_epochs": 2, "train.device": "cpu",
    "train.router_holdout": 0.3, "train.micro_batch": 2, "train.grad_ckpt": True,
    "brain.hidden": 16, "brain.n_blocks": 1, "brain.n_tokens": 3, "brain.d_f": 8, "brain.dropout": 0.0,
    "decode.decoder": "wan", "decode.wan_toy": True, "decode.num_frames": 5, "decode.height": 16,
    "decode.width": 16, "decode.top_k": 3,
}  # fmt: skip

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # stage 1, then torchrun: ~60 s


def _jpegs(rgb, n=3, size=16) -> list[bytes]:
    from PIL import Image

    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (size, size), tuple(int(c) for c in (np.array(rgb) + 20 * i) % 256)).save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A toy store whose clips' ground truth is their JPEG previews, and its stage-1 run."""
    from cineneuron.config import load_config
    from cineneuron.schemas.records import FmriBatch
    from cineneuron.store import Store
    from cineneuron.train.stage1 import train_stage1

    root = tmp_path_factory.mktemp("ddpwan")
    (root / "toy.json").write_text(json.dumps(toy_preset_dict()))
    store = Store.create(str(root / "store"), str(root / "toy.json"))
    rng = np.random.default_rng(0)
    clips = random_clips(N_TRAIN, split="train") + random_clips(N_TEST, seed=1, split="test", start=N_TRAIN)
    for c in clips:
        c.frames = _jpegs(rng.integers(0, 256, 3))
    store.upsert_clips(clips)
    store.register_subject("ds", "1", n_tr=N_TR, n_voxels=V, mask=None, mask_hash="h", qc={})
    for split in ("train", "test"):
        group = [c for c in clips if c.split == split]
        n = len(group)
        store.add_fmri("ds", "1", FmriBatch(
            sample_id=[f"{split}{i}" for i in range(n)], clip_id=[c.clip_id for c in group], split=[split] * n,
            repeat=np.full(n, 0 if split == "train" else -1), tr_index=np.arange(n),
            voxels=rng.normal(size=(n, N_TR, V)).astype(np.float32)))
    assert TOY_DIMS["cond"] == store.dims["cond"]
    train_stage1(store, load_config(None, {"store.uri": store.uri, **OVER}), "1", with_ridge=False)
    return root / "store"


def _helper():
    spec = importlib.util.spec_from_file_location("ddp_wan_helper", HELPERS / "ddp_wan.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _reference(store_dir: Path, init: dict) -> tuple[dict, int]:
    """One process from the ranks' initial weights, on the same full global batches: per step, each
    rank's slice (and its slice of the fold batch) through `WanStage2.backward` with the generator
    that rank draws from (seed + rank), the slices' gradients averaged, then the same step."""
    from cineneuron.config import load_config
    from cineneuron.store import Store
    from cineneuron.train import wan_lora as wt
    from cineneuron.train.loop import Schedule, loss_weights, stage2_optimizer
    from cineneuron.train.stage2 import _batches
    from cineneuron.train.stage2_wan import prepare

    s = Store.open(str(store_dir))
    cfg = load_config(None, {"store.uri": str(store_dir), **OVER})
    parts = prepare(s, cfg, "1")
    assert parts.latents["encoded"] == 0  # rank 0 filled the cache
    mine = _helper().trainable_state(parts)
    # prepare is deterministic apart from the LoRA's A (peft draws it from the global RNG)
    assert all(torch.equal(mine[k], init[k]) for k in init if not k.startswith("lora."))
    own = {**{f"model.{k}": v for k, v in parts.model.state_dict().items()},
           **{f"router.{k}": v for k, v in parts.router.state_dict().items()},
           **{f"fusion.{k}": v for k, v in parts.fusion.state_dict().items()},
           **{f"lora.{n}": p for n, p in parts.transformer.named_parameters() if "lora_" in n}}
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(init[k])
    batches, fold_batches, spe = _batches(s, parts.dataset, parts.subject, parts.targets, parts.fold, cfg, Rank())
    assert fold_batches is not None and len(parts.fold) == 10
    sch = Schedule.from_epochs(cfg.train, batches.n_samples(0) // 8, epochs=cfg.train.stage2_epochs)
    others = wt.lora_parameters(parts.transformer) + list(parts.fusion.parameters())
    opt, sched = stage2_optimizer(parts.model, parts.router, cfg.train, sch.total_steps, others)
    params = parts.parameters()
    gens = [torch.Generator().manual_seed(cfg.train.seed + r) for r in range(WORLD)]
    weights = loss_weights(cfg.train)
    parts.train()
    step = 0
    for epoch in range(cfg.train.stage2_epochs):
        for b in batches(epoch):
            if len(b["clip_id"]) < 8:  # the ragged tail the ranks drop
                continue
            fb = next(fold_batches)
            grads = []
            for r in range(WORLD):
                opt.zero_grad(set_to_none=True)
                parts.backward(shard_batch(b, Rank(r, WORLD)), weights, gens[r], shard_batch(fb, Rank(r, WORLD)),
                               micro_batch=cfg.train.micro_batch)
                grads.append([None if p.grad is None else p.grad.clone() for p in params])
            for p, *gs in zip(params, *grads):
                p.grad = None if gs[0] is None else sum(gs) / WORLD
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            opt.step()
            sched.step()
            step += 1
    return _helper().trainable_state(parts), step


def test_wan_stage2_two_ranks_equal_each_other_and_one_process(store_dir, tmp_path):
    from safetensors.torch import load_file

    from cineneuron.store import Store

    runs = len(Store.open(str(store_dir)).catalog.runs(subject="1", stage=2))
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(WORLD),
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(HELPERS / "ddp_wan.py"),
           str(store_dir), str(tmp_path), *(f"{k}={json.dumps(v)}" for k, v in OVER.items())]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    i0, i1 = (json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1))
    assert i0["world"] == 2 and i0["ddp"] and i1["ddp"]  # torch's DistributedDataParallel
    # the latent cache is filled once: rank 0 encodes every training clip, rank 1 only reads
    assert (i0["encodes"], i1["encodes"]) == (N_TRAIN, 0)
    assert i0["latents"] == {"encoded": N_TRAIN, "cached": 0, "failed": 0} and i1["latents"]["cached"] == N_TRAIN
    # the run and the catalog are written once, by rank 0
    assert (i0["saves"], i1["saves"]) == (1, 0)
    store = Store.open(str(store_dir))
    assert len(store.catalog.runs(subject="1", stage=2)) == runs + 1
    run = Path(store.catalog.runs(subject="1", stage=2)[0].checkpoint)
    for name in ("model.safetensors", "router.safetensors", "fusion.safetensors", "wan.json",
                 "lora/pytorch_lora_weights.safetensors"):
        assert (run / name).exists(), name
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    init = load_file(str(tmp_path / "rank0_init.safetensors"))
    assert max((init[k] - v).abs().max().item() for k, v in load_file(str(tmp_path / "rank1_init.safetensors")).items()) == 0.0
    assert {k.split(".")[0] for k in w0} == {"model", "router", "fusion", "lora"}
    assert max((w0[k] - w1[k]).abs().max().item() for k in w0) == 0.0
    ref, steps = _reference(store_dir, init)
    assert i0["steps"] == i1["steps"] == steps == 4  # 2 epochs x 2 full global batches of the 20 fitted clips
    diff = max((w0[k] - ref[k]).abs().max().item() for k in w0)
    print(f"Wan stage 2: max |2 ranks - 1 process| = {diff:.2e} after {steps} steps")
    assert diff < 1e-5, diff
    for part in ("model", "router", "fusion", "lora"):  # every trained part moved
        moved = max((w0[k] - init[k]).abs().max().item() for k in w0 if k.startswith(part + "."))
        assert moved > 1e-5, part


def test_cn_train_nproc_runs_the_wan_stage2_and_records_one_run(store_dir):
    """`cn train --stage 2 --decoder wan --nproc 2` launches torchrun (it used to refuse in one line)."""
    from cineneuron.store import Store

    sets = [a for k, v in OVER.items() if k != "decode.decoder" for a in ("--set", f"{k}={json.dumps(v)}")]
    before = len(Store.open(str(store_dir)).catalog.runs(subject="1", stage=2))
    r = subprocess.run([sys.executable, "-m", "cineneuron.cli", "train", "--stage", "2", "--decoder", "wan",
                        "--subject", "1", "--store", str(store_dir), "--nproc", "2", "--json", "--quiet", *sets],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)  # rank 0 alone prints
    assert out["steps"] == 4 and sum(out["latents"].values()) == N_TRAIN and np.isfinite(out["last"]["flow"])
    assert Path(out["run_dir"], "lora", "pytorch_lora_weights.safetensors").exists()
    assert len(Store.open(str(store_dir)).catalog.runs(subject="1", stage=2)) == before + 1


FILL_FAILS = '''
import json, sys
import cineneuron.train.distributed as d
import cineneuron.train.stage2_wan as ws
from cineneuron.config import load_config
from cineneuron.errors import CNError

rank = d.init("cpu")
ws.cache_latents = lambda *a, **k: {"encoded": 0, "cached": 0, "failed": {"c1": "c1.mp4 not found"}}
try:
    ws.fill_cache(None, None, None, ["c1"], None, load_config(None, {}), rank=rank)
    out = "returned"
except CNError as e:
    out = str(e)
open(sys.argv[1] + f"/rank{rank.rank}.txt", "w").write(out)
d.shutdown()
'''


def test_when_rank0_cannot_fill_the_cache_every_rank_stops_with_one_line(tmp_path):
    """The other ranks wait for rank 0's cache at a barrier that carries its outcome: no hang."""
    script = tmp_path / "fill.py"
    script.write_text(FILL_FAILS)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                        "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script), str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = ((tmp_path / f"rank{k}.txt").read_text() for k in (0, 1))
    assert r0.startswith("no training clip has ground-truth frames (e.g. c1: c1.mp4 not found)")
    assert r1 == "rank 0 could not fill the VAE latent cache; its error says why"
