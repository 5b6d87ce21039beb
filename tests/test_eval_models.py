"""Evaluation models: toy-size VideoMAE, ViT, OpenCLIP, DINOv2 and RAFT saved to a tmp dir and
loaded through the same loaders as real weights; missing weights give a notice, not a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cineneuron.errors import CNError
from cineneuron.eval import models as M
from cineneuron.eval.frames import clip_pcc_videos, dtc_videos
from cineneuron.eval.semantic import n_way_suite

N_CLASSES = 60  # 50-way needs at least 49 + 3 classes
TOY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                            "head_width": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    """Toy evaluation models written as the published checkpoints are (random weights)."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    from transformers import (Dinov2Config, Dinov2Model, VideoMAEConfig, VideoMAEForVideoClassification, ViTConfig,
                              ViTForImageClassification)

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("evalmodels")
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    VideoMAEForVideoClassification(VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2,
                                                  intermediate_size=64, num_labels=N_CLASSES, **small)
                                   ).save_pretrained(d / "videomae")
    ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, intermediate_size=64, num_labels=N_CLASSES,
                                        **small)).save_pretrained(d / "vit")
    # a published-style processor config: resize the short side to 36, centre-crop 32
    (d / "vit" / "preprocessor_config.json").write_text(json.dumps({
        "size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3}))
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, mlp_ratio=2, **small)).save_pretrained(d / "dinov2")
    # OpenCLIP: a registered toy config + a safetensors state dict, and a local-dir: folder
    (d / "clipcfg").mkdir()
    (d / "clipcfg" / "toy-clip.json").write_text(json.dumps(TOY_CLIP))
    open_clip.add_model_config(str(d / "clipcfg"))
    clip = open_clip.create_model("toy-clip")
    save_file(clip.state_dict(), str(d / "clip.safetensors"))
    (d / "clipdir").mkdir()
    save_file(clip.state_dict(), str(d / "clipdir" / "open_clip_model.safetensors"))
    (d / "clipdir" / "open_clip_config.json").write_text(json.dumps({"model_cfg": TOY_CLIP, "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}))
    from torchvision.models.optical_flow import raft_small

    raft = raft_small(weights=None).state_dict()
    save_file(raft, str(d / "raft.safetensors"))
    torch.save({f"module.{k}": v for k, v in raft.items()}, d / "raft.pth")  # DataParallel-style keys
    return d


@pytest.fixture(scope="module")
def videos():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(5, 24, 40, 3), dtype=np.uint8) for _ in range(3)]  # 3 × (T, H, W, 3)


def test_missing_weights_give_notices_not_crashes(tmp_path):
    for loader in (M.load_videomae, M.load_vit, M.load_dinov2, M.load_raft, M.load_clip):
        model, notice = loader(tmp_path / "nope")
        assert model is None and notice.startswith("skipped ") and "not found" in notice
        assert loader(None)[1].endswith("(no path configured)")
    models, notices = M.load_all({})
    assert set(models) == {"videomae", "vit", "clip", "dinov2", "raft"} and not any(models.values())
    assert len(notices) == 5


def test_broken_folder_raises_cnerror(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CNError, match="could not load VideoMAE"):
        M.load_videomae(tmp_path)


def test_classifier_metrics_end_to_end(toy_dir, videos):
    vmae, notice = M.load_videomae(toy_dir / "videomae")
    assert notice is None and vmae.num_frames == 4 and len(vmae.labels) == N_CLASSES
    recon = [np.flip(v, axis=2).copy() for v in videos]
    p_rec, p_gt = vmae.predict_proba(recon), vmae.predict_proba(videos)  # (N, C)
    assert p_rec.shape == (3, N_CLASSES) and np.allclose(p_rec.sum(1), 1, atol=1e-5)
    suite = n_way_suite(p_rec, p_gt, n_trials=10)
    assert 0 <= suite["50way"]["peer"]["value"] <= 1 and suite["2way"]["peer"]["chance"] == 0.75

    vit, _ = M.load_vit(toy_dir / "vit")
    assert vit.spec.resize == 36 and vit.spec.crop == (32, 32) and vit.spec.resample == "bicubic"
    f_rec = vit.predict_proba_videos(recon)  # (N, T, C) frame-based
    assert f_rec.shape == (3, 5, N_CLASSES)
    same = n_way_suite(f_rec, f_rec, ways=(2,), variants=("strict",), n_trials=10)
    assert same["2way"]["strict"]["value"] == 1.0 and same["2way"]["strict"]["n"] == 15


def test_embedders_end_to_end(toy_dir, videos):
    clip, notice = M.load_clip(toy_dir / "clip.safetensors", "toy-clip")
    assert notice is None
    emb = clip.embed(videos[0])
    assert emb.shape == (5, 32) and np.isfinite(emb).all()
    clip_dir, _ = M.load_clip(f"local-dir:{toy_dir / 'clipdir'}")
    np.testing.assert_allclose(clip_dir.embed(videos[0]), emb, atol=1e-5)  # same weights both ways
    with pytest.raises(CNError, match="model name"):
        M.load_clip(toy_dir / "clip.safetensors")

    pcc = clip_pcc_videos(videos, clip, "all")
    static = clip_pcc_videos([np.repeat(videos[0][:1], 4, axis=0)], clip)
    assert pcc["n"] == 3 and -1 <= pcc["value"] <= 1 and static["value"] == pytest.approx(1.0, abs=1e-5)

    dino, _ = M.load_dinov2(toy_dir / "dinov2")
    assert dino.embed(videos[0]).shape == (5, 32)
    d = dtc_videos(videos, dino)
    assert 0 <= d["value"] <= 1 and d["n"] == 3
    assert dtc_videos([np.repeat(videos[1][:1], 3, axis=0)], dino)["value"] == pytest.approx(1.0, abs=1e-5)


def test_toy_raft_runs_end_to_end(toy_dir, videos):
    """Random weights: the flow is meaningless; check loading (both formats), shapes, finiteness."""
    from cineneuron.eval.motion import dynamic_degree_gap, epe_videos

    raft, notice = M.load_raft(toy_dir / "raft.safetensors", num_flow_updates=2)
    assert notice is None and M.load_raft(toy_dir / "raft.pth")[0] is not None
    assert M.RaftFlow.work_size(24, 40) == (128, 216)
    raft.batch_size = 1  # exercise the batching path
    flow = raft.flow(videos[0][:3, :, :24])  # 3 frames at 24×24 (run at 128×128)
    assert flow.shape == (2, 24, 24, 2) and np.isfinite(flow).all()
    gt, recon = videos[0][:2], videos[1][:2]
    e = epe_videos([gt], [recon], raft, resolution=(16, 16))
    assert np.isfinite(e["value"]) and e["estimator"].startswith("raft") and e["resolution"] == [16, 16]
    gap = dynamic_degree_gap([gt], [gt], raft, resolution=(16, 16))
    assert gap["gap"]["value"] == 0.0
