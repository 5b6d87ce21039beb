"""Data-parallel stage 1 with torchrun on CPU (gloo on the loopback): equal to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cineneuron.train.distributed import Rank, RankBatches, free_port, shard_batch

HELPERS = Path(__file__).parent / "helpers"
TOY = [sys.executable, str(HELPERS / "cn_toy.py")]
OVER = {"train.epochs": 2, "train.batch_size": 8, "brain.hidden": 32, "brain.dropout": 0.0,
        "train.device": "cpu", "train.router_holdout": 0.0}


def test_shards_are_equal_slices_and_ragged_tails_are_dropped():
    batches = lambda e: [{"clip_id": list("abcdefgh"), "voxels": torch.arange(8), "subject": "1"},  # noqa: E731
                         {"clip_id": list("xyz"), "voxels": torch.arange(3), "subject": "1"}]
    r0, r1 = (list(RankBatches(batches, Rank(r, 2), 8)(0)) for r in (0, 1))
    assert len(r0) == len(r1) == 1  # the 3-sample tail is gone on both
    assert r0[0]["clip_id"] == list("abcd") and r1[0]["clip_id"] == list("efgh")
    assert r1[0]["voxels"].tolist() == [4, 5, 6, 7] and r1[0]["subject"] == "1"
    assert shard_batch({"clip_id": ["a", "b"], "subject": "1"}, Rank(0, 1))["clip_id"] == ["a", "b"]
    from cineneuron.errors import CNError

    with pytest.raises(CNError, match="multiple"):
        RankBatches(batches, Rank(0, 3), 8)


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    from conftest import toy_preset_dict

    d = tmp_path_factory.mktemp("ddp")
    (d / "toy.json").write_text(json.dumps(toy_preset_dict()))
    world, store = d / "world", d / "store"
    run = lambda *a: subprocess.run([*TOY, *map(str, a)], check=True, capture_output=True, timeout=300)  # noqa: E731
    run("synth", "--out", world, "--size", "small", "--clips", "40", "--seed", "5", "--quiet")
    run("init", "--store", store, "--preset", d / "toy.json")
    run("ingest", "synth", "--root", world, "--subject", "1", "--store", store, "--quiet",
        "--set", "fmri.cc2017.selection.method=all")
    return store


def _reference(store: Path, world: int) -> tuple[dict, int]:
    """One process, the same global batches: each step averages the `world` slices' losses."""
    from cineneuron.brain.data import StoreBatches, load_targets, sample_clip_ids
    from cineneuron.brain.losses import stage1_loss
    from cineneuron.brain.model import create_brain_model
    from cineneuron.config import load_config
    from cineneuron.store import Store
    from cineneuron.train.loop import Schedule, Stage1Trainer
    from cineneuron.train.stage1 import brain_config

    s = Store.open(str(store))
    cfg = load_config(None, {"store.uri": str(store), **OVER})
    sub = s.catalog.subject("synth", "1")
    targets = load_targets(s, sample_clip_ids(s, "synth", "1", "train"))
    batches = StoreBatches(s, "synth", "1", targets, batch_size=8, seed=cfg.train.seed)
    spe = batches.n_samples(0) // 8
    model = create_brain_model(brain_config(s, cfg, "1", sub.n_tr, sub.n_voxels), seed=cfg.train.seed)
    tr = Stage1Trainer(model, cfg.train, Schedule.from_epochs(cfg.train, spe))
    step, epoch = 0, 0
    while step < tr.schedule.total_steps:
        for b in batches(epoch):
            if len(b["clip_id"]) < 8 or step >= tr.schedule.total_steps:
                continue
            tr.optimizer.zero_grad(set_to_none=True)
            for r in range(world):
                part = shard_batch(b, Rank(r, world))
                out = model(part["voxels"].float(), "1")
                tgt = tr._targets(part)
                tgt["img"] = model.pool_image_targets(tgt.pop("img_frames"))
                (stage1_loss(out, tgt, tr.weights)["loss"] / world).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tr.cfg.grad_clip)
            tr.optimizer.step()
            tr.scheduler.step()
            step += 1
        epoch += 1
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, step


@pytest.mark.slow  # torchrun with two ranks on two cores: ~30 s
def test_two_ranks_equal_each_other_and_one_process(toy_store, tmp_path, one_torch_thread):
    from safetensors.torch import load_file

    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(HELPERS / "ddp_stage1.py"),
           str(toy_store), str(tmp_path), *(f"{k}={json.dumps(v)}" for k, v in OVER.items())]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    i0, i1 = (json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1))
    assert i0["world"] == 2 and i0["saves"] == 1 and i1["saves"] == 0  # rank 0 alone writes, once
    assert i0["ddp"] and i1["ddp"]  # torch's DistributedDataParallel, not a hand-made all-reduce
    assert max((w0[k] - w1[k]).abs().max().item() for k in w0) == 0.0
    ref, steps = _reference(toy_store, 2)
    assert i0["step"] == i1["step"] == steps > 4
    diff = max((w0[k] - ref[k]).abs().max().item() for k in w0)
    print(f"max |2 ranks - 1 process| = {diff:.2e}")
    assert diff < 1e-5, diff
    init = _init_weights(toy_store)
    assert max((w0[k] - init[k]).abs().max().item() for k in w0) > 1e-3  # it trained


def _init_weights(store):
    from cineneuron.brain.model import create_brain_model
    from cineneuron.config import load_config
    from cineneuron.store import Store
    from cineneuron.train.stage1 import brain_config

    s = Store.open(str(store))
    cfg = load_config(None, {"store.uri": str(store), **OVER})
    sub = s.catalog.subject("synth", "1")
    return create_brain_model(brain_config(s, cfg, "1", sub.n_tr, sub.n_voxels), seed=cfg.train.seed).state_dict()


@pytest.mark.slow
def test_cn_train_nproc_launches_torchrun_and_writes_one_run(toy_store):
    from cineneuron.store import Store

    sets = [a for k, v in OVER.items() for a in ("--set", f"{k}={v}")]
    before = len(Store.open(str(toy_store)).catalog.runs(subject="1", stage=1))
    r = subprocess.run([sys.executable, "-m", "cineneuron.cli", "train", "--stage", "1", "--subject", "1",
                        "--store", str(toy_store), "--nproc", "2", "--json", "--quiet", *sets],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)  # rank 0 alone prints
    assert Path(out["run_dir"], "model.safetensors").exists()
    runs = Store.open(str(toy_store)).catalog.runs(subject="1", stage=1)
    assert len(runs) == before + 1  # rank 0 alone records the run
    bad = subprocess.run([sys.executable, "-m", "cineneuron.cli", "train", "--stage", "1",
                          "--subject", "1", "--store", str(toy_store), "--nproc", "1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--nproc" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


STAGE2 = {"train.stage2_epochs": 2}


def _reference_stage2(store: Path, world: int) -> tuple[dict, int]:
    """The replay stage 2 in one process on the same full global batches, slices' losses averaged."""
    import numpy as np

    from cineneuron.brain.data import StoreBatches, load_targets, router_fold, sample_clip_ids
    from cineneuron.config import load_config
    from cineneuron.decode.router import load_mom
    from cineneuron.store import Store
    from cineneuron.store.runs import run_dir
    from cineneuron.train.loop import Schedule, loss_weights, stage2_optimizer
    from cineneuron.train.objective import Stage2Objective

    s = Store.open(str(store))
    cfg = load_config(None, {"store.uri": str(store), **OVER, **STAGE2})
    model, router, _, _ = load_mom(run_dir(s, "synth", "1", 1, cfg.train.runs_dir))
    ids = sample_clip_ids(s, "synth", "1", "train")
    targets = load_targets(s, ids)
    fold = router_fold(s, ids, cfg.train.router_holdout, cfg.train.seed)
    batches = StoreBatches(s, "synth", "1", targets, batch_size=8, seed=cfg.train.seed + 1, exclude=fold)
    sch = Schedule.from_epochs(cfg.train, batches.n_samples(0) // 8, epochs=cfg.train.stage2_epochs)
    opt, sched = stage2_optimizer(model, router, cfg.train, sch.total_steps)
    obj = Stage2Objective(model, router, loss_weights(cfg.train), torch.from_numpy(np.array(targets.mix)), "1",
                          cfg.train.temperature, cfg.train.lambda_router)
    model.train()
    step = 0
    for epoch in range(cfg.train.stage2_epochs):
        for b in batches(epoch):
            if len(b["clip_id"]) < 8:
                continue
            opt.zero_grad(set_to_none=True)
            for r in range(world):
                (obj(shard_batch(b, Rank(r, world)))["loss"] / world).backward()
            torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(router.parameters()), 1.0)
            opt.step()
            sched.step()
            step += 1
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    weights.update({f"router.{k}": v for k, v in router.state_dict().items()})
    return {k: v.detach().clone() for k, v in weights.items()}, step


@pytest.mark.slow  # stage 1 in one process, then torchrun with two ranks: ~40 s on two cores
def test_replay_stage2_two_ranks_equal_each_other_and_one_process(toy_store, tmp_path, one_torch_thread):
    from safetensors.torch import load_file

    from cineneuron.config import load_config
    from cineneuron.store import Store
    from cineneuron.train.stage1 import train_stage1

    s = Store.open(str(toy_store))
    train_stage1(s, load_config(None, {"store.uri": str(toy_store), **OVER}), "1", with_ridge=False)
    runs = len(s.catalog.runs(subject="1", stage=2))
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(HELPERS / "ddp_stage2.py"),
           str(toy_store), str(tmp_path), *(f"{k}={json.dumps(v)}" for k, v in {**OVER, **STAGE2}.items())]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    i0, i1 = (json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1))
    assert i0["ddp"] and i1["ddp"] and i0["saves"] == 1 and i1["saves"] == 0  # rank 0 alone writes
    assert len(Store.open(str(toy_store)).catalog.runs(subject="1", stage=2)) == runs + 1
    assert max((w0[k] - w1[k]).abs().max().item() for k in w0) == 0.0
    ref, steps = _reference_stage2(toy_store, 2)
    assert steps >= 4
    diff = max((w0[k] - ref[k]).abs().max().item() for k in w0)
    print(f"stage 2: max |2 ranks - 1 process| = {diff:.2e} after {steps} steps")
    assert diff < 1e-5, diff
    assert (w0["router.proj.weight"] - 0).abs().max().item() > 1e-4  # the router trained (it starts at zero)
