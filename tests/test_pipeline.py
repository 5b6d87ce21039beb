"""End to end through the CLI on a small simulated world: synth -> ingest -> train -> query -> eval."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # one module fixture trains both stages through the CLI

CN = [sys.executable, "-m", "cineneuron.cli"]


def cn(*args, check=True):
    r = subprocess.run([*CN, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"cn {' '.join(map(str, args))} exited {r.returncode}: {r.stderr[-3000:]}")
    return r


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe")
    world, store = d / "world", d / "store"
    cn("synth", "--out", world, "--size", "small", "--clips", "200", "--seed", "4", "--quiet")
    cn("init", "--store", store)
    ing = cn("ingest", "synth", "--root", world, "--subject", "1", "--store", store, "--quiet",
             "--set", "fmri.cc2017.selection.method=all")
    # The router's held-out fold (not the default) so the pipeline covers that path end to end.
    fold = ("--set", "train.router_holdout=0.2")
    s1 = cn("train", "--stage", "1", "--subject", "1", "--store", store, "--quiet", "--json",
            "--set", "train.epochs=15", "--set", "brain.hidden=128", *fold)
    bad = cn("train", "--stage", "2", "--subject", "1", "--store", store, "--quiet", check=False)
    s2 = cn("train", "--stage", "2", "--subject", "1", "--store", store, "--quiet", "--json",
            "--set", "train.stage2_epochs=2", "--set", "brain.hidden=128", *fold)
    return d, world, store, ing, json.loads(s1.stdout), json.loads(s2.stdout), bad


def test_synth_is_deterministic_per_seed(trained, tmp_path):
    _, world, *_ = trained
    again, other = tmp_path / "again", tmp_path / "other"
    cn("synth", "--out", again, "--size", "small", "--clips", "200", "--seed", "4", "--quiet")
    cn("synth", "--out", other, "--size", "small", "--clips", "200", "--seed", "5", "--quiet")
    for f in ("subject1/fmri/training_fmri.mat", "subject1/fmri/testing_fmri.mat"):
        assert _sha(world / f) == _sha(again / f)
        assert _sha(world / f) != _sha(other / f)
    caps = lambda w: [c["caption"] for c in json.loads((w / "annotations.json").read_text())["clips"]]  # noqa: E731
    assert caps(world) == caps(again) != caps(other)


def test_ingest_stores_the_expected_samples(trained):
    from cineneuron.store import Store

    _, world, store, ing, *_ = trained
    ann = json.loads((world / "annotations.json").read_text())["world"]
    per, lag = ann["clips_per_segment"], 2  # 4 s lag at TR 2 s: the last 2 clips of a run have no response
    n_train = len(ann["train_segments"]) * (per - lag) * 2  # two repeats
    n_test = len(ann["test_segments"]) * (per - lag)  # the average of ten repeats
    assert f"(test {n_test}, train {n_train})" in ing.stdout
    s = Store.open(str(store))
    assert s.fmri_table("synth", "1").count_rows() == n_train + n_test
    assert s.count() == ann["clips_per_segment"] * (len(ann["train_segments"]) + len(ann["test_segments"]))


def test_reingest_does_not_duplicate_and_other_voxel_count_is_refused(trained, tmp_path):
    from cineneuron.store import Store

    _, world, store, *_ = trained
    before = Store.open(str(store)).fmri_table("synth", "1").count_rows()
    cn("ingest", "synth", "--root", world, "--subject", "1", "--store", store, "--quiet", "--set", "fmri.cc2017.selection.method=all")
    assert Store.open(str(store)).fmri_table("synth", "1").count_rows() == before
    other = tmp_path / "w999"
    cn("synth", "--out", other, "--size", "small", "--clips", "200", "--voxels", "349", "--seed", "4", "--quiet")
    r = cn("ingest", "synth", "--root", other, "--subject", "1", "--store", store, "--quiet", "--clips-only", check=False)
    assert r.returncode == 0  # same clips (same seed): nothing new, nothing refused
    r = cn("ingest", "synth", "--root", other, "--subject", "1", "--store", store, "--quiet",
           "--set", "fmri.cc2017.selection.method=all", check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "350" in r.stderr and "349" in r.stderr and "nothing was written" in r.stderr
    assert Store.open(str(store)).fmri_table("synth", "1").count_rows() == before


def test_stage2_fits_the_router_on_its_fold_and_refuses_another_fold(trained):
    *_, s2, bad = trained
    assert s2["last"]["router_fold_clips"] > 0
    assert bad.returncode != 0 and "router_holdout" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_stage1_learns_above_chance(trained):
    """In every space the true clip ranks better than chance among the 36 test clips (one-sided
    p < 0.05 per space). This tiny world (15 epochs) only checks that the CLI pipeline learns;
    the demo test asserts the strong effect (top-1 over 5x chance among 162).

    Top-1 among 36 moves by 0.028 per sample, so it is printed, not tested; the mean rank of the
    true clip uses every sample's whole ranking: under chance its mean is (n+1)/2 with sd
    sqrt((n^2 - 1) / 12 / n)."""
    from cineneuron.brain.data import load_split, load_targets
    from cineneuron.decode.router import load_mom, predict_mom
    from cineneuron.store import Store
    from cineneuron.store.runs import run_dir
    from cineneuron.train.stage1 import test_targets

    _, _, store_path, _, s1, _, _ = trained
    m = s1["model"]
    dirs = [m[f"{s}_{d}"] for s in ("img", "txt", "act") for d in ("fmri_to_clip", "clip_to_fmri")]
    print("stage-1 retrieval top-1", dict(zip(("img_f2c", "img_c2f", "txt_f2c", "txt_c2f", "act_f2c", "act_c2f"), dirs)),
          "chance", m["chance"])
    assert set(s1["ridge"]) >= {"img_fmri_to_clip", "img_clip_to_fmri"}
    store = Store.open(str(store_path))
    test = load_split(store, "synth", "1", "test", where="repeat = -1")
    model, router, _, _ = load_mom(run_dir(store, "synth", "1", 1))
    preds = predict_mom(model, router, test["voxels"], "1")
    tt = test_targets(load_targets(store, test["clip_id"]), test["clip_id"])
    n = len(test["clip_id"])
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    zs = []
    for space in ("img", "txt", "act"):
        sim = unit(preds[space]) @ unit(tt[space]).T  # (n, n): fMRI predictions x clips
        ranks = 1 + (sim > np.diag(sim)[:, None]).sum(1)  # rank of the true clip for each sample
        z = (ranks.mean() - (n + 1) / 2) / np.sqrt((n * n - 1) / 12 / n)
        print(f"{space}: mean rank {ranks.mean():.1f} of {n} (chance {(n + 1) / 2:.1f}), z {z:.1f}")
        zs.append(z)
    assert max(zs) < -1.645, zs  # z of the one-sided 5 % level


def test_router_fold_is_stable_whole_blocks_and_never_fitted(trained):
    from cineneuron.brain.data import ROUTER_BLOCK_S, StoreBatches, load_targets, router_fold, sample_clip_ids
    from cineneuron.store import Store

    _, _, store_path, *_ = trained
    store = Store.open(str(store_path))
    ids = sample_clip_ids(store, "synth", "1", "train")
    fold = router_fold(store, ids, 0.2, seed=0)
    assert fold == router_fold(store, ids, 0.2, seed=0) and fold != router_fold(store, ids, 0.2, seed=1)
    assert router_fold(store, ids, 0.0, seed=0) == set()
    uniq = sorted(set(ids))
    assert 0.05 < len(fold) / len(uniq) < 0.45
    meta = store.get_clips(uniq, ["video", "start_s"]).to_pylist()
    block = {r["clip_id"]: (r["video"], int(r["start_s"] // ROUTER_BLOCK_S)) for r in meta}
    held_blocks = {block[c] for c in fold}
    assert {c for c in uniq if block[c] in held_blocks} == fold  # whole blocks, never a part of one
    targets = load_targets(store, ids)
    fit = StoreBatches(store, "synth", "1", targets, batch_size=16, exclude=fold)
    only = StoreBatches(store, "synth", "1", targets, batch_size=16, only=fold)
    seen_fit = [c for b in fit(0) for c in b["clip_id"]]
    seen_fold = [c for b in only(0) for c in b["clip_id"]]
    assert seen_fit and not set(seen_fit) & fold and set(seen_fold) <= fold
    assert fit.n_batches(0) == len(list(fit(0))) and only.n_batches(0) == len(list(only(0)))


def test_router_learns_only_from_fold_predictions(trained):
    import torch

    from cineneuron.brain.data import StoreBatches, load_targets, router_fold, sample_clip_ids
    from cineneuron.decode.router import load_mom
    from cineneuron.train.loop import fold_router_loss
    from cineneuron.store.runs import run_dir
    from cineneuron.store import Store

    _, _, store_path, *_ = trained
    store = Store.open(str(store_path))
    model, router, *_ = load_mom(run_dir(store, "synth", "1", 1))
    ids = sample_clip_ids(store, "synth", "1", "train")
    targets = load_targets(store, ids)
    batch = next(iter(StoreBatches(store, "synth", "1", targets, batch_size=16, only=router_fold(store, ids, 0.2, 0))(0)))
    model.train()
    router.train()
    loss = fold_router_loss(model, router, batch, "1", torch.from_numpy(np.array(targets.mix)), 0.07)
    loss.backward()
    assert model.training  # put back in training mode for the backbone's own batches
    assert all(p.grad is None for p in model.parameters())
    assert router.proj.weight.grad is not None and router.proj.weight.grad.abs().sum() > 0


def _test_voxels(store_path, n=3):
    from cineneuron.store import Store

    b = next(Store.open(str(store_path)).iter_fmri("synth", "1", split="test", batch_size=n))
    return b["voxels"][:n], b["clip_id"][:n]


def test_query_json_and_video(trained, tmp_path):
    _, _, store, *_ = trained
    x, _ = _test_voxels(store)
    np.save(tmp_path / "q.npy", x)
    r = cn("query", "--fmri", tmp_path / "q.npy", "--subject", "1", "--store", store, "--json", "--top-k", "4",
           "--out", tmp_path / "rec.mp4")
    out = json.loads(r.stdout)
    assert out["top_k"] == 4 and len(out["queries"]) == 3 and "stage2" in out["checkpoint"]
    q0 = out["queries"][0]
    assert set(q0["weights"]) == {"txt", "img", "act"} and abs(sum(q0["weights"].values()) - 1) < 1e-5
    assert len(q0["memories"]) == 4 and all(m["source"] == "synth" for m in q0["memories"])
    scores = [m["score"] for m in q0["memories"]]
    assert scores == sorted(scores, reverse=True)
    w = q0["weights"]
    m = q0["memories"][0]
    assert abs(m["score"] - (w["txt"] * m["cos_txt"] + w["img"] * m["cos_img"] + w["act"] * m["cos_act"])) < 1e-4
    import imageio.v3 as iio

    frames = iio.imread(q0["video"])
    assert frames.ndim == 4 and frames.shape[0] == 8  # the 8 preview frames, blended
    only = cn("query", "--fmri", tmp_path / "q.npy", "--subject", "1", "--store", store, "--json",
              "--where", "source = 'nowhere'")
    assert json.loads(only.stdout)["queries"][0]["memories"] == []


@pytest.mark.parametrize("case", ["nan", "shape", "subject", "missing"])
def test_query_bad_input_is_one_line(trained, tmp_path, case):
    _, _, store, *_ = trained
    x, _ = _test_voxels(store, 2)
    f = tmp_path / "q.npy"
    if case == "nan":
        x[1, 0, 5] = np.nan
    if case == "shape":
        x = x[..., :-3]
    np.save(f, x)
    args = ["query", "--fmri", f if case != "missing" else tmp_path / "nope.npy", "--subject",
            "9" if case == "subject" else "1", "--store", store]
    r = cn(*args, check=False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert {"nan": "NaN", "shape": "voxels", "subject": "unknown subject", "missing": "does not exist"}[case] in r.stderr


def test_checkpoint_from_another_voxel_space_is_refused(trained, tmp_path):
    _, world, store, *_ = trained
    other = tmp_path / "store2"
    cn("init", "--store", other)
    cn("ingest", "synth", "--root", world, "--subject", "1", "--store", other, "--quiet")  # reliability mask
    shutil.copytree(store / "runs", other / "runs")
    x, _ = _test_voxels(other, 1)
    np.save(tmp_path / "q.npy", x)
    r = cn("query", "--fmri", tmp_path / "q.npy", "--subject", "1", "--store", other, check=False)
    assert r.returncode == 2 and "voxel mask" in r.stderr and r.stderr.count("\n") == 1


def test_eval_writes_the_report(trained, tmp_path):
    _, _, store, *_ = trained
    out = tmp_path / "ev"
    cn("eval", "--subject", "1", "--store", store, "--out", out, "--quiet")
    for f in ("metrics.json", "metrics.md", "grid.mp4"):
        assert (out / f).stat().st_size > 0
    doc = json.loads((out / "metrics.json").read_text())
    r = doc["results"]["retrieval"]["fmri_to_clip"]
    assert r["pool_size"] == r["n"] and r["protocol"] == "neuroclips" and doc["retrieval_protocol"] == "neuroclips"
    assert any(n.startswith("skipped CLIP-pcc") for n in doc["notices"])
    assert list((out / "plots").glob("retrieval_fmri_to_clip*.png"))
    assert "retrieval protocol: neuroclips" in (out / "metrics.md").read_text()
    md = (out / "metrics.md").read_text()
    assert "| retrieval.fmri_to_clip |" in md and "text-only" in md and "ridge" in md


def test_eval_html_report_loads_in_chromium(trained, tmp_path):
    """`cn eval`'s index.html: every plot and the H.264 grid video load offline in headless Chromium."""
    import pytest

    from browser import chromium, loaded_media, screenshot
    from cineneuron.eval.html import video_codec

    _, _, store, *_ = trained
    out = tmp_path / "ev"
    cn("eval", "--subject", "1", "--store", store, "--out", out, "--quiet")
    assert video_codec(out / "grid.mp4") == ("h264", "yuv420p")
    page = out / "index.html"
    assert "grid.mp4" in page.read_text()
    if chromium() is None:
        pytest.skip("chromium not installed (.ci/run installs it)")
    media = loaded_media(page)
    assert len(media["imgs"]) == len(list((out / "plots").glob("*.png"))) > 0 and len(media["vids"]) == 1
    assert all(i["ok"] and i["w"] > 0 and i["h"] > 0 for i in media["imgs"] + media["vids"]), media
    assert screenshot(page, tmp_path / "eval.png").stat().st_size > 10_000
