"""Brain Model shapes, subjects, checkpoints and the ridge baseline, at toy size.

Dims are all different (n_tr=2, V=37, d_img=24, d_txt=20, d_act=28, T=3, ...) so axis mix-ups fail.
"""

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from cineneuron.brain.heads import FramePool
from cineneuron.brain.mlp import MLPConfig
from cineneuron.brain.model import (
    BrainModelConfig,
    TargetDims,
    create_brain_model,
    flatten_state,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from cineneuron.brain.ridge import RidgeBaseline, pool_frames_mean
from cineneuron.brain.transformer import TRANSFORMER_PRESETS, TransformerConfig
from cineneuron.errors import CNError

N_TR, V, V2 = 2, 37, 41
D_IMG, D_TXT, D_ACT, T = 24, 20, 28, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_cfg(backbone="mlp", dropout=0.1, **kw) -> BrainModelConfig:
    return BrainModelConfig(
        backbone=backbone,
        subjects={"sub-01": {"n_tr": N_TR, "n_voxels": V}, "sub.02": {"n_tr": 3, "n_voxels": V2}},
        targets=TargetDims(img=D_IMG, txt=D_TXT, act=D_ACT, n_frames=T),
        mlp=MLPConfig(hidden=32, n_blocks=2, n_tokens=5, token_dim=12),
        transformer=TransformerConfig(n_layers=2, hidden=32, n_heads=4, n_patches=6, token_dim=12, mlp_ratio=2.0),
        head_hidden=18,
        dropout=dropout,
        **kw,
    )


@pytest.mark.parametrize("backbone,n_tokens", [("mlp", 5), ("transformer", 6)])
def test_forward_shapes(backbone, n_tokens):
    model = create_brain_model(toy_cfg(backbone), seed=0).eval()
    out = model(torch.randn(7, N_TR, V), "sub-01")
    assert out["g"].shape == (7, 32)
    assert out["F"].shape == (7, n_tokens, 12)
    assert out["img"].shape == (7, D_IMG)
    assert out["txt"].shape == (7, D_TXT)
    assert out["act"].shape == (7, D_ACT)
    assert out["cls_logits"].shape == (7, 15)
    out2 = model(torch.randn(4, 3, V2), "sub.02")  # another subject, same shared backbone
    assert out2["g"].shape == (4, 32) and out2["F"].shape == (4, n_tokens, 12)


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_subjects_share_everything_but_the_input_layer(backbone):
    model = create_brain_model(toy_cfg(backbone), seed=0)
    a = {id(p) for p in model.subject_parameters("sub-01")}
    b = {id(p) for p in model.subject_parameters("sub.02")}
    assert a and b and not a & b
    shared = [n for n, _ in model.named_parameters() if "subject_in" not in n]
    assert any(n.startswith("backbone.") for n in shared) and any(n.startswith("heads.") for n in shared)


def test_bad_input_is_a_user_error():
    model = create_brain_model(toy_cfg(), seed=0)
    with pytest.raises(CNError, match="sub-99"):
        model(torch.randn(2, N_TR, V), "sub-99")
    with pytest.raises(CNError, match=r"\(batch, 2, 37\)"):
        model(torch.randn(2, V, N_TR), "sub-01")  # transposed axes are refused, not reshaped


def test_seed_makes_init_deterministic_without_touching_global_rng():
    torch.manual_seed(5)
    expect = torch.rand(1)
    torch.manual_seed(5)
    a = create_brain_model(toy_cfg("transformer"), seed=3)
    assert torch.equal(torch.rand(1), expect)
    b = create_brain_model(toy_cfg("transformer"), seed=3)
    c = create_brain_model(toy_cfg("transformer"), seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, backbone):
    cfg = toy_cfg(backbone)
    model = create_brain_model(cfg, seed=1)
    with torch.no_grad():  # move off the init so a silent re-init would be caught
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    extra = {"preset": "classic", "preset_hash": "abc123", "mask_hash": "m1", "store_version": 7, "step": 42}
    save_checkpoint(tmp_path / "ck", model, cfg, extra)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    loaded, cfg2, extra2 = load_checkpoint(tmp_path / "ck")
    assert cfg2 == cfg and extra2 == extra and not loaded.training
    x = torch.randn(6, N_TR, V)
    with torch.no_grad():
        a, b = model(x, "sub-01"), loaded(x, "sub-01")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["model_config"]["backbone"] == backbone


def test_load_checkpoint_missing_is_a_user_error(tmp_path):
    with pytest.raises(CNError, match="no Brain Model checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_config_rejects_typos():
    with pytest.raises(ValidationError):
        BrainModelConfig.model_validate({**toy_cfg().model_dump(), "dropuot": 0.2})


def test_target_dims_from_preset():
    from cineneuron.schemas.presets import load_preset

    p = load_preset("classic")
    dims = TargetDims.from_preset(p)
    assert (dims.img, dims.txt, dims.act, dims.n_frames) == (256, 384, 256, 16)


def test_paper_transformer_preset_size():
    cfg = TransformerConfig.preset("paper")  # never instantiated here: ~1.2 B parameters
    assert (cfg.n_layers, cfg.hidden, cfg.n_patches + 1) == (24, 2048, 513)
    assert TRANSFORMER_PRESETS["paper"]["hidden"] % TRANSFORMER_PRESETS["paper"]["n_heads"] == 0
    with pytest.raises(CNError):
        TransformerConfig.preset("huge")


def test_frame_pool_starts_as_mean_of_unit_frames():
    pool = FramePool(T)
    frames = torch.randn(5, T, D_IMG) * torch.tensor([1.0, 10.0, 0.1]).view(1, T, 1)
    unit = frames / frames.norm(dim=-1, keepdim=True)
    assert torch.allclose(pool(frames), unit.mean(1), atol=1e-6)
    assert torch.allclose(pool(frames).detach(), torch.as_tensor(pool_frames_mean(frames.numpy())).float(), atol=1e-6)
    with torch.no_grad():
        pool.logits.copy_(torch.tensor([0.0, 50.0, 0.0]))  # all weight on the middle frame
    assert torch.allclose(pool(frames), unit[:, 1], atol=1e-5)
    assert pool.weights().sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 frames"):
        pool(torch.randn(5, T + 1, D_IMG))


def test_flatten_state_round_trip():
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 5)}, 1: {}},
        "param_groups": [{"betas": (0.9, 0.999), "params": [0, 1], "foreach": None, "lr": 1e-3}],
        "rng": torch.randint(0, 255, (16,), dtype=torch.uint8),
        "step": 5,
    }
    meta, tensors = flatten_state(state)
    back = unflatten_state(json.loads(json.dumps(meta)), tensors)
    assert back["param_groups"] == state["param_groups"]
    assert isinstance(back["param_groups"][0]["betas"], tuple)
    assert set(back["state"]) == {0, 1} and back["state"][1] == {}
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert torch.equal(back["rng"], state["rng"]) and back["step"] == 5


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    n = 60
    x = rng.standard_normal((n, N_TR, V))
    w = {k: rng.standard_normal((N_TR * V, d)) for k, d in (("txt", D_TXT), ("act", D_ACT))}
    frames = rng.standard_normal((n, T, D_IMG))
    y = {k: x.reshape(n, -1) @ m for k, m in w.items()}
    est = RidgeBaseline(alphas=(1e-3, 1.0, 1e3))
    assert est.get_params() == {"alphas": (1e-3, 1.0, 1e3), "fit_intercept": True, "standardize": True}
    assert not hasattr(est, "models_")
    est.fit(x, {**y, "img_frames": frames})
    assert sorted(est.spaces_) == ["act", "img", "txt"] and set(est.alpha_) == set(est.spaces_)
    pred = est.predict(x[:9])
    assert pred["img"].shape == (9, D_IMG) and pred["txt"].shape == (9, D_TXT) and pred["act"].shape == (9, D_ACT)
    for k in ("txt", "act"):
        cos = (pred[k] * y[k][:9]).sum(1) / np.linalg.norm(pred[k], axis=1) / np.linalg.norm(y[k][:9], axis=1)
        assert cos.min() > 0.99, k


def test_ridge_errors_are_user_errors():
    est = RidgeBaseline()
    with pytest.raises(CNError, match="not fitted"):
        est.predict(np.zeros((2, N_TR, V)))
    est.fit(np.random.default_rng(1).standard_normal((10, N_TR, V)), {"txt": np.ones((10, D_TXT))})
    with pytest.raises(CNError, match="74 features"):
        est.predict(np.zeros((2, N_TR, V + 1)))
    with pytest.raises(CNError, match="rows"):
        RidgeBaseline().fit(np.zeros((10, N_TR, V)), {"txt": np.ones((9, D_TXT))})
