"""Stage 2 with the Wan decoder, end to end at toy size on a tiny store (CPU, one torch thread).

store (toy preset, unequal dims) -> fMRI -> stage 1 -> query with a fresh fusion (C == T*) ->
train_stage2_wan (cached latents, gradients only where allowed) -> `cn query --decoder wan`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from conftest import TOY_DIMS, VIDEOS, random_clips, toy_preset_dict

from cineneuron.decode import wan
from cineneuron.errors import CNError

N_TRAIN, N_TEST, V, N_TR = 16, 3, 37, 2
F_, H_, W_ = 9, 32, 32
BASE = {
    "train.epochs": 1, "train.batch_size": 8, "train.stage2_epochs": 2, "brain.hidden": 16, "brain.n_blocks": 1,
    "brain.n_tokens": 3, "brain.d_f": 8, "decode.decoder": "wan", "decode.wan_toy": True, "decode.num_frames": F_,
    "decode.height": H_, "decode.width": W_, "decode.steps": 2, "decode.top_k": 3, "decode.guidance_scale": 2.0,
}  # fmt: skip


pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # trains stage 1 and the Wan stage 2


def _jpegs(rgb, n=4, size=24) -> list[bytes]:
    from PIL import Image

    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (size, size), tuple(int(c) for c in (np.array(rgb) + 20 * i) % 256)).save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


def _clips():
    from cineneuron.schemas.records import clip_id

    rng = np.random.default_rng(0)
    clips = random_clips(N_TRAIN, split="train") + random_clips(N_TEST, seed=1, split="test", start=N_TRAIN)
    # a clip overlapping clips 0 and 1 of video v0: both must be excluded from its retrieved set
    c0 = clips[0]
    clips.append(dataclasses.replace(c0, clip_id=clip_id(c0.source, c0.video, 1.0, 3.0), start_s=1.0, end_s=3.0, caption="overlap"))
    for c in clips:
        c.frames = _jpegs(rng.integers(0, 256, 3))  # video_uris are fake: the preview fallback is used
    real = VIDEOS / "bikes.mp4"
    if real.exists():  # one clip from a real video: the video path is used for it
        clips[2].video_uri = str(real)
    return clips


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cineneuron.train.stage1 import train_stage1
    from cineneuron.config import load_config
    from cineneuron.schemas.records import FmriBatch
    from cineneuron.store import Store

    root = tmp_path_factory.mktemp("wanpipe")
    (root / "toy.json").write_text(json.dumps(toy_preset_dict()))
    store = Store.create(str(root / "store"), str(root / "toy.json"))
    clips = _clips()
    store.upsert_clips(clips)
    store.set_meta("empty_cond", json.dumps({"shape": [1, TOY_DIMS["cond"]]}), np.full((1, TOY_DIMS["cond"]), 0.5, np.float16).tobytes())
    train = [c for c in clips if c.split == "train"]
    test = [c for c in clips if c.split == "test"]
    rng = np.random.default_rng(3)
    store.register_subject("ds", "1", n_tr=N_TR, n_voxels=V, mask=None, mask_hash="h", qc={})
    for group, split, rep in ((train, "train", 0), (test, "test", -1)):
        n = len(group)
        store.add_fmri("ds", "1", FmriBatch(
            sample_id=[f"{split}{i}" for i in range(n)], clip_id=[c.clip_id for c in group], split=[split] * n,
            repeat=np.full(n, rep), tr_index=np.arange(n), voxels=rng.normal(size=(n, N_TR, V)).astype(np.float32)))
    cfg = load_config(None, BASE)
    train_stage1(store, cfg, "1", with_ridge=False)
    query = root / "q.npy"
    np.save(query, rng.normal(size=(1, N_TR, V)).astype(np.float32))
    return {"root": root, "store": store, "cfg": cfg, "query": query, "clips": clips}


def _read_mp4(path):
    import imageio.v2 as imageio

    with imageio.get_reader(str(path), format="FFMPEG") as r:
        return np.stack([f for f in r])  # not list(r): len() is sys.maxsize for an mp4 (nframes=inf)


def test_query_with_fresh_fusion_gives_t_star_exactly(world, monkeypatch):
    from cineneuron.decode.reconstruct import run_query
    from cineneuron.store.rows import decode_cond

    seen = []
    real = wan.WanDecoder.generate
    monkeypatch.setattr(wan.WanDecoder, "generate", lambda self, cond, negative=None: seen.append((cond, negative)) or real(self, cond, negative))
    out = world["root"] / "init.mp4"
    res = run_query(world["store"], world["cfg"], str(world["query"]), "1", out=str(out))
    top1 = res["queries"][0]["memories"][0]["clip_id"]
    t_star = decode_cond(world["store"].get_clips([top1], ["cond"]).column("cond")[0].as_py(), TOY_DIMS["cond"])
    (cond, negative), = seen
    assert cond.shape == (1, *t_star.shape) and torch.equal(cond[0], torch.from_numpy(t_star.astype(np.float32)))
    assert np.array_equal(negative, np.full((1, 1, TOY_DIMS["cond"]), 0.5, np.float32))  # the store's empty prompt
    frames = _read_mp4(out)
    assert frames.shape == (F_, H_, W_, 3) and res["queries"][0]["video"] == str(out)


@pytest.mark.parametrize("bad, word", [({"decode.num_frames": 10}, "num_frames"), ({"decode.width": 100}, "width")])
def test_bad_settings_refused_before_any_model(world, monkeypatch, bad, word):
    import cineneuron.train.stage2 as st2
    from cineneuron.config import load_config
    from cineneuron.decode.wan_decoder import WanMoMDecoder
    from cineneuron.train.stage2_wan import train_stage2_wan
    from cineneuron.decode.reconstruct import run_query

    wan_built, brain_loaded = [], []
    for name in ("get_dummy_components", "load_components", "build_pipeline"):
        monkeypatch.setattr(wan, name, lambda *a, **k: wan_built.append(a))
    real_load_mom = st2.load_mom
    monkeypatch.setattr(st2, "load_mom", lambda d: brain_loaded.append(d) or real_load_mom(d))
    cfg = load_config(None, {**BASE, **bad})
    with pytest.raises(CNError, match=word) as err:
        train_stage2_wan(world["store"], cfg, "1")
    assert "\n" not in str(err.value) and brain_loaded == []  # not even the Brain Model
    with pytest.raises(CNError, match=word):
        WanMoMDecoder(cfg.decode, store=world["store"])
    out = world["root"] / "bad.mp4"
    with pytest.raises(CNError, match=word):  # run_query loads the Brain Model first (lead's order), never Wan
        run_query(world["store"], cfg, str(world["query"]), "1", out=str(out))
    assert wan_built == [] and not out.exists()


def test_real_folder_with_other_text_dim_refused(world, tmp_path):
    from cineneuron.config import load_config
    from cineneuron.decode.wan_decoder import WanMoMDecoder

    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text(json.dumps({"text_dim": 4096}))
    cfg = load_config(None, {**BASE, "decode.wan_toy": False, "decode.wan_model_dir": str(tmp_path)})
    with pytest.raises(CNError, match=f"text_dim=4096.*cond dim is {TOY_DIMS['cond']}"):
        WanMoMDecoder(cfg.decode, store=world["store"])


def test_fit_frames_crops_to_the_target_aspect():
    from cineneuron.train.stage2_wan import fit_frames

    video = np.zeros((5, 40, 80, 3), np.uint8)
    video[:, :, :12] = 255  # a white band on the left: cropped away for a square target (kept: columns 20-60)
    sq = fit_frames(video, 9, 32, 32)
    assert sq.shape == (9, 32, 32, 3) and sq.max() == 0
    wide = fit_frames(video, 3, 16, 48)  # wider than the source: the white band stays, top/bottom go
    assert wide.shape == (3, 16, 48, 3) and wide[:, :, :6].min() > 200
    squashed = fit_frames(np.zeros((2, 32, 32, 3), np.uint8), 2, 32, 48, src_aspect=2.0)
    assert squashed.shape == (2, 32, 48, 3)


@pytest.fixture(scope="module")
def wan_run(world):
    """Two stage-2 Wan trainings in their own runs dir; counts VAE encodes and records retrievals."""
    from diffusers import AutoencoderKLWan

    import cineneuron.train.stage2_wan as ws
    from cineneuron.config import load_config
    from cineneuron.store.runs import run_dir

    store, runs = world["store"], world["root"] / "runs-wan"
    shutil.copytree(run_dir(store, "ds", "1", 1), runs / "ds-sub1" / "stage1")  # the default runs dir stays wan-free
    cfg = load_config(None, {**BASE, "train.runs_dir": str(runs)})
    calls, retrieved = [0], []
    real_encode, real_retrieve = AutoencoderKLWan.encode, ws.retrieve_fused

    def encode(self, *a, **k):
        calls[0] += 1
        return real_encode(self, *a, **k)

    def retrieve(q, pool, rows, k):
        idx, valid = real_retrieve(q, pool, rows, k)
        retrieved.append((rows.tolist(), idx.tolist(), valid.tolist(), pool))
        return idx, valid

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AutoencoderKLWan, "encode", encode)
        mp.setattr(ws, "retrieve_fused", retrieve)
        first = ws.train_stage2_wan(store, cfg, "1")
        encodes_first = calls[0]
        second = _cli(["train", "--stage", "2", "--decoder", "wan", "--subject", "1", "--quiet", "--json"], store, runs)
    return {"cfg": cfg, "runs": runs, "first": first, "second": second, "encodes": (encodes_first, calls[0] - encodes_first),
            "retrieved": retrieved}


def test_stage2_wan_trains_caches_latents_once_and_saves_the_run(world, wan_run):
    from cineneuron.store.latents import LATENTS_TABLE

    store, first = world["store"], wan_run["first"]
    n_train = N_TRAIN + 1
    assert set(first) >= {"run_dir", "seconds", "steps", "last"} and first["steps"] == 4  # 2 epochs x 2 batches
    assert np.isfinite(first["last"]["flow"]) and first["last"]["flow"] > 0 and "noise" in first["notice"]
    # each clip encoded exactly once: not per epoch, and not again by the second run
    assert wan_run["encodes"] == (n_train, 0)
    assert first["latents"] == {"encoded": n_train, "cached": 0, "failed": 0}
    assert wan_run["second"]["latents"] == {"encoded": 0, "cached": n_train, "failed": 0}
    lat = store.db.open_table(LATENTS_TABLE).to_arrow().to_pylist()
    assert len(lat) == n_train and {tuple(r["shape"]) for r in lat} == {(16, 3, H_ // 8, W_ // 8)}
    sources = {r["clip_id"]: r["source"] for r in lat}
    want_video = {world["clips"][2].clip_id} if VIDEOS.joinpath("bikes.mp4").exists() else set()
    assert {c for c, s in sources.items() if s == "video"} == want_video
    assert {c for c, s in sources.items() if s == "preview"} == set(sources) - want_video

    run = wan_run["runs"] / "ds-sub1" / "stage2-wan"
    assert first["run_dir"] == str(run)
    for name in ("model.safetensors", "config.json", "router.safetensors", "fusion.safetensors", "fusion_config.json",
                 "run_config.json", "wan.json", "lora/pytorch_lora_weights.safetensors", "lora/lora_config.json"):
        assert (run / name).exists(), name
    lora = json.loads((run / "lora" / "lora_config.json").read_text())
    assert (lora["r"], lora["lora_alpha"]) == (16, 16)
    assert store.catalog.runs(subject="1", stage=2)[0].checkpoint == str(run)


def test_training_never_retrieves_the_own_or_overlapping_clips(world, wan_run):
    by_id = {c.clip_id: c for c in world["clips"]}
    n_checked = 0
    for rows, idx, valid, pool in wan_run["retrieved"]:
        for r, top, ok in zip(rows, idx, valid):
            me = by_id[pool.ids[r]]
            got = [by_id[pool.ids[j]] for j, v in zip(top, ok) if v]
            assert got and all(not (g.video == me.video and g.start_s < me.end_s and g.end_s > me.start_s) for g in got)
            n_checked += 1
    pool = wan_run["retrieved"][0][3]
    overlap = next(c for c in world["clips"] if c.caption == "overlap")
    excl = {pool.ids[j] for j in pool.exclude[pool.ids.index(overlap.clip_id)]}
    assert excl == {overlap.clip_id, world["clips"][0].clip_id, world["clips"][1].clip_id}
    assert n_checked >= 4 * 8


def test_only_lora_brain_router_and_fusion_get_gradients(world, wan_run):
    from cineneuron.brain.data import StoreBatches
    from cineneuron.train.loop import loss_weights
    from cineneuron.train import wan_lora as wt
    from cineneuron.train.stage2_wan import prepare

    cfg = wan_run["cfg"]
    parts = prepare(world["store"], cfg, "1")
    assert parts.latents["encoded"] == 0
    params = parts.parameters()
    allowed = {id(p) for p in params}
    batches = StoreBatches(world["store"], "ds", "1", parts.targets, batch_size=8, seed=0)
    weights = loss_weights(cfg.train)
    parts.train()
    loss, logs = parts.loss(next(iter(batches(0))), weights, torch.Generator().manual_seed(0))
    loss.backward()
    mods = {"model": parts.model, "router": parts.router, "fusion": parts.fusion}
    assert len(params) == len(wt.lora_parameters(parts.transformer)) + sum(len(list(m.parameters())) for m in mods.values())
    for name, m in {**mods, "dit": parts.transformer, "vae": parts.pipe.vae}.items():
        for n, p in m.named_parameters():
            if id(p) not in allowed:
                assert not p.requires_grad and p.grad is None, f"{name}.{n}"
    assert any(p.grad.abs().sum() > 0 for p in wt.lora_parameters(parts.transformer) if p.grad is not None)
    for name, m in mods.items():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters()), name
    assert parts.fusion.z_f.weight.grad.abs().sum() > 0 and logs["flow"] > 0


def test_with_a_fold_batch_the_router_learns_only_from_it(world, wan_run):
    from cineneuron.brain.data import StoreBatches
    from cineneuron.train.loop import loss_weights
    from cineneuron.train.loop import fold_router_loss
    from cineneuron.train.stage2_wan import prepare

    cfg = wan_run["cfg"]
    parts = prepare(world["store"], cfg, "1")
    fit, fold = list(StoreBatches(world["store"], "ds", "1", parts.targets, batch_size=8, seed=0)(0))[:2]
    parts.train()
    loss, _ = parts.loss(fit, loss_weights(cfg.train), torch.Generator().manual_seed(0), fold_batch=fold)
    loss.backward()
    total = [p.grad.clone() for p in parts.router.parameters()]
    parts.router.zero_grad(set_to_none=True)
    alone = fold_router_loss(parts.model, parts.router, fold, "1", parts.pool.mix, cfg.train.temperature)
    (cfg.train.lambda_router * alone).backward()
    assert any(g.abs().sum() > 0 for g in total)
    for g, p in zip(total, parts.router.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)


def _cli(args: list[str], store, runs) -> dict:
    """`cn ARGS` in-process with the toy Wan settings, the test's store and runs dir; returns its --json output."""
    from typer.testing import CliRunner

    from cineneuron.cli import app

    sets = [f"{k}={json.dumps(v)}" for k, v in BASE.items() if k != "decode.decoder"] + [f"train.runs_dir={runs}"]
    res = CliRunner().invoke(app, [*args, "--store", store.uri, *(a for s in sets for a in ("--set", s))])
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout)


def test_cli_query_with_trained_wan_run_writes_the_requested_video(world, wan_run):
    from cineneuron.decode.wan_decoder import WanMoMDecoder
    from cineneuron.decode.reconstruct import Reconstructor

    out = world["root"] / "x.mp4"
    args = ["query", "--fmri", str(world["query"]), "--subject", "1", "--decoder", "wan", "--out", str(out), "--json"]
    res = _cli(args, world["store"], wan_run["runs"])
    assert res["decoder"] == "wan" and res["queries"][0]["video"] == str(out)
    assert _read_mp4(out).shape == (F_, H_, W_, 3)

    # the decoder found the run: trained fusion (C moved off T*) and LoRA loaded into the DiT
    rec = Reconstructor(world["store"], wan_run["cfg"], "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dec = WanMoMDecoder(wan_run["cfg"].decode, store=world["store"], reconstructor=rec)
    assert dec.run == wan_run["runs"] / "ds-sub1" / "stage2-wan" and dec.cfg.lora_dir == dec.run / "lora"
    # With decode.decoder=wan the Reconstructor takes the Brain Model trained with the fusion.
    assert rec.checkpoint == dec.run
    assert not any("F comes from checkpoint" in str(w.message) for w in caught)
    preds = rec.predict(rec.load(world["query"]))
    results = rec.retrieve(preds, 3)
    c, t_star, mask = dec.conditioning(world["store"], results, preds)
    assert c.shape == t_star.shape and not torch.equal(c, t_star) and torch.equal(c[~mask], t_star[~mask])
    assert any("lora_" in n for n, _ in dec.generator().pipe.transformer.named_parameters())


def test_query_refuses_settings_the_wan_run_was_not_trained_with(world, wan_run):
    """The fusion learned from top_k memories and the LoRA from num_frames x height x width latents."""
    from typer.testing import CliRunner

    from cineneuron.cli import app

    meta = json.loads((wan_run["runs"] / "ds-sub1" / "stage2-wan" / "wan.json").read_text())
    assert meta["top_k"] == BASE["decode.top_k"] and meta["num_frames"] == F_
    sets = [f"{k}={json.dumps(v)}" for k, v in BASE.items() if k != "decode.decoder"] + [f"train.runs_dir={wan_run['runs']}"]
    out = world["root"] / "refused.mp4"
    for flag, value in (("decode.top_k", BASE["decode.top_k"] + 1), ("decode.num_frames", F_ + 4)):
        args = ["query", "--fmri", str(world["query"]), "--subject", "1", "--decoder", "wan", "--out", str(out),
                "--store", world["store"].uri, *(a for s in sets for a in ("--set", s)), "--set", f"{flag}={value}"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code != 0 and isinstance(res.exception, CNError), res.output
        assert flag in str(res.exception) and str(meta[flag.split('.')[1]]) in str(res.exception)
        assert not out.exists()
