"""The per-stage loss modules DDP wraps: what they leave frozen is exactly what gets no gradient."""

import pytest
import torch

from cineneuron.brain.losses import LossWeights
from cineneuron.brain.model import create_brain_model
from cineneuron.decode.router import Router
from cineneuron.train.objective import Stage1Objective, Stage2Objective, freeze, stage1_unused, stage2_unused
from test_brain_train import make_batch, toy_cfg

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _two_subjects(backbone):
    cfg = toy_cfg(backbone).model_copy(deep=True)
    cfg.subjects["sub-02"] = cfg.subjects["sub-01"]
    return create_brain_model(cfg, seed=0)


def _no_grad(model) -> set[int]:
    return {id(p) for p in model.parameters() if p.grad is None}


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
@pytest.mark.parametrize("act,cls", [(True, True), (False, False)])
def test_stage1_unused_is_exactly_what_gets_no_gradient(backbone, act, cls):
    model, w = _two_subjects(backbone), LossWeights(use_action=act, use_cls=cls)
    b = make_batch(0)
    tgt = {k: b[k] for k in ("img_frames", "txt", "act", "label_vec")}
    Stage1Objective(model, w)(b["voxels"], "sub-01", tgt)["loss"].backward()
    assert _no_grad(model) == {id(p) for p in stage1_unused(model, "sub-01", w)}
    assert model.heads.frame_pool.logits.grad is not None  # the target side's pool learns inside forward


@pytest.mark.parametrize("cls", [True, False])
def test_stage2_unused_is_exactly_what_gets_no_gradient(cls):
    model, w = _two_subjects("mlp"), LossWeights(use_action=False, use_cls=cls)
    router = Router(model.cfg.mlp.token_dim)
    b = make_batch(1)
    d_mix = b["txt"].shape[1] + b["img_frames"].shape[2] + b["act"].shape[1]
    b["clip_row"] = torch.arange(8)
    obj = Stage2Objective(model, router, w, torch.randn(8, d_mix), "sub-01", 0.07, 1.0)
    obj(b)["loss"].backward()
    assert _no_grad(model) == {id(p) for p in stage2_unused(model, "sub-01", w)}
    assert all(p.grad is not None for p in router.parameters())


def test_freeze_restores_requires_grad():
    model = create_brain_model(toy_cfg(), seed=0)
    ps = list(model.heads.cls.parameters())
    undo = freeze(ps)
    assert not any(p.requires_grad for p in ps)
    undo()
    assert all(p.requires_grad for p in ps)
