"""The paper preset through the CLI, as a new user runs it: init -> ingest -> stage 1 -> query,
and on to stage 2 with the Wan decoder and a Wan query (toy Wan weights: its video is noise).

Toy weights in the real on-disk formats (OpenCLIP `local-dir:` folder, ViCLIP's official .pth,
a Wan2.1 diffusers text half), so the subprocesses need nothing registered in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("open_clip")
import paper_fixtures as P  # noqa: E402

CN = [sys.executable, "-m", "cineneuron.cli"]


def cn(*args, check=True):
    r = subprocess.run([*CN, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"cn {' '.join(map(str, args))} exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def write_toy_paper_preset(d) -> "Path":  # noqa: F821
    from cineneuron.schemas.presets import load_preset

    w = d / "weights"
    w.mkdir(parents=True)
    P.register_openclip_toy(w)
    clip = P.save_openclip_dir(w / "clip", seed=20)
    vic = P.save_viclip(w / "viclip.pth", seed=21)
    wan = P.save_wan_text(w / "wan", seed=22)
    preset = json.loads(load_preset("paper").model_dump_json())
    preset["frames"] = {"n": P.FRAMES, "size": P.SIZE}
    enc = preset["encoders"]
    # mean/std as tuples in Python, lists in the stored JSON: the case that broke every ingest.
    enc["image"].update(dim=P.EMBED, config=dict(model=f"local-dir:{clip}", mean=P.OPENAI_MEAN, std=P.OPENAI_STD,
                                                 size=P.SIZE))
    enc["text"].update(dim=P.EMBED, config=dict(model=f"local-dir:{clip}"))
    enc["action"].update(dim=P.EMBED, config=dict(weights=str(vic), arch=P.VICLIP_TOY_ARCH, mean=P.IMAGENET_MEAN,
                                                  std=P.IMAGENET_STD, size=P.SIZE))
    enc["cond"].update(dim=P.EMBED + 8, config=dict(model_dir=str(wan)))
    path = d / "paper.json"
    path.write_text(json.dumps(preset))
    return path


def test_reopened_paper_store_accepts_its_own_encoders(tmp_path):
    """The identity read back from the store's JSON equals the live encoders' identity."""
    from cineneuron.ingest.clips import prepare_encoders
    from cineneuron.store import Store

    preset = write_toy_paper_preset(tmp_path)
    Store.create(str(tmp_path / "s"), str(preset))
    reopened = Store.open(str(tmp_path / "s"))
    assert isinstance(reopened.preset.identity["image"]["config"]["mean"], list)
    prepare_encoders(reopened)  # raised StoreMismatchError "(changed: config)" before the fix


@pytest.mark.slow
def test_paper_preset_init_ingest_train_query_through_the_cli(tmp_path):
    preset = write_toy_paper_preset(tmp_path)
    world, store = tmp_path / "world", tmp_path / "store"
    cn("synth", "--out", world, "--size", "small", "--clips", "40", "--seed", "1", "--quiet")
    cn("init", "--store", store, "--preset", preset)
    r = cn("ingest", "synth", "--root", world, "--subject", "1", "--store", store, "--quiet", "--set", "encoders.device=cpu",
           "--set", "encoders.video_backend=pyav", "--set", "fmri.cc2017.selection.method=all")
    assert "40 clips stored" in r.stdout and "0 failed" in r.stdout
    st = json.loads(cn("pool", "stats", "--store", store, "--json").stdout)
    assert st["preset"] == "paper" and st["clips"] == 40
    again = cn("ingest", "synth", "--root", world, "--store", store, "--quiet", "--clips-only",
               "--set", "encoders.video_backend=pyav")
    assert "0 clips stored, 40 already present" in again.stdout
    cn("train", "--stage", "1", "--subject", "1", "--store", store, "--quiet", "--json",
       "--set", "train.epochs=2", "--set", "brain.hidden=32", "--set", "train.batch_size=16")
    n_vox = st["fmri"]["synth/1"]["n_voxels"]
    np.save(tmp_path / "q.npy", np.random.default_rng(0).normal(size=(2, n_vox)).astype(np.float32))
    out = json.loads(cn("query", "--fmri", tmp_path / "q.npy", "--subject", "1", "--store", store, "--json",
                        "--top-k", "3").stdout)
    assert len(out["queries"]) == 2
    for q in out["queries"]:
        assert len(q["memories"]) == 3 and all(np.isfinite(m["score"]) for m in q["memories"])
        assert abs(sum(q["weights"].values()) - 1) < 1e-5
    # Stage 2 with the Wan decoder (toy weights at the store's cond width), then a Wan query.
    wan = ["--set", "decode.wan_toy=true", "--set", "decode.num_frames=5", "--set", "decode.height=16",
           "--set", "decode.width=16", "--set", "decode.steps=2", "--set", "decode.top_k=3", "--set", "train.device=cpu"]
    s2 = json.loads(cn("train", "--stage", "2", "--decoder", "wan", "--subject", "1", "--store", store, "--quiet", "--json",
                       "--set", "train.stage2_epochs=1", "--set", "train.batch_size=16", "--set", "brain.hidden=32", *wan).stdout)
    assert s2["steps"] >= 1 and s2["latents"]["failed"] == 0 and "noise" in s2["notice"]
    video = tmp_path / "x.mp4"
    res = json.loads(cn("query", "--fmri", tmp_path / "q.npy", "--subject", "1", "--store", store, "--json",
                        "--decoder", "wan", "--out", video, *wan).stdout)
    assert res["decoder"] == "wan" and res["checkpoint"].endswith("stage2-wan")
    assert [q["video"] for q in res["queries"]] == [str(tmp_path / "x_0.mp4"), str(tmp_path / "x_1.mp4")]
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "x_0.mp4").shape == (5, 16, 16, 3)
