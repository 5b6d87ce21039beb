"""Stage-1 losses against values computed by hand."""

import math

import pytest
import torch

from cineneuron.brain.losses import (
    LossWeights,
    bce_loss,
    category_loss,
    focal_loss,
    info_nce,
    stage1_loss,
)


def _lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _hand_info_nce(pred, target, tau):
    """Symmetric InfoNCE with plain Python floats."""
    unit = lambda v: [x / math.sqrt(sum(y * y for y in v)) for x in v]
    p, t = [unit(v) for v in pred], [unit(v) for v in target]
    s = [[sum(a * b for a, b in zip(pi, tj)) / tau for tj in t] for pi in p]
    n = len(s)
    rows = sum(_lse(s[i]) - s[i][i] for i in range(n)) / n
    cols = sum(_lse([s[j][i] for j in range(n)]) - s[i][i] for i in range(n)) / n
    return 0.5 * (rows + cols)


def test_info_nce_2x2_by_hand():
    pred = [[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]]
    target = [[2.0, 0.0, 1.0], [-1.0, 3.0, 0.5]]
    for tau in (0.5, 0.07):
        got = info_nce(torch.tensor(pred), torch.tensor(target), tau).item()
        assert got == pytest.approx(_hand_info_nce(pred, target, tau), rel=1e-5)


def test_info_nce_2x2_closed_form():
    # Orthonormal pairs: cosines [[1, 0], [0, 1]]; each row and column: log(1 + e^{-1/tau}).
    eye = torch.eye(2)
    tau = 0.25
    assert info_nce(eye, eye, tau).item() == pytest.approx(math.log(1 + math.exp(-1 / tau)), rel=1e-5)  # float32 lse - x


def test_info_nce_is_symmetric_and_scale_free():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 11, generator=g), torch.randn(6, 11, generator=g)
    assert info_nce(a, b).item() == pytest.approx(info_nce(b, a).item(), rel=1e-6)
    assert info_nce(3.0 * a, 0.1 * b).item() == pytest.approx(info_nce(a, b).item(), rel=1e-5)


def test_bce_and_focal_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    y = torch.tensor([[1.0, 0.0, 0.0]])
    sig = lambda x: 1 / (1 + math.exp(-x))
    p = [sig(2.0), sig(-1.0), sig(0.5)]
    ce = [-math.log(p[0]), -math.log(1 - p[1]), -math.log(1 - p[2])]
    assert bce_loss(logits, y).item() == pytest.approx(sum(ce) / 3, rel=1e-6)

    pt = [p[0], 1 - p[1], 1 - p[2]]
    focal = [(1 - q) ** 2 * c for q, c in zip(pt, ce)]
    assert focal_loss(logits, y, gamma=2.0).item() == pytest.approx(sum(focal) / 3, rel=1e-6)

    alpha_t = [0.25, 0.75, 0.75]  # alpha for positives, 1 - alpha for negatives
    focal_a = [a * f for a, f in zip(alpha_t, focal)]
    assert focal_loss(logits, y, gamma=2.0, alpha=0.25).item() == pytest.approx(sum(focal_a) / 3, rel=1e-6)
    assert category_loss(logits, y, 2.0, 0.25).item() == pytest.approx((sum(ce) + sum(focal_a)) / 3, rel=1e-6)


def test_focal_at_gamma_zero_is_bce_exactly():
    g = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(9, 15, generator=g)
    y = (torch.rand(9, 15, generator=g) > 0.7).float()
    assert torch.equal(focal_loss(logits, y, gamma=0.0, alpha=None), bce_loss(logits, y))


def test_focal_down_weights_easy_examples():
    y = torch.ones(1, 1)
    easy, hard = torch.tensor([[4.0]]), torch.tensor([[-1.0]])
    ratio_focal = focal_loss(easy, y).item() / focal_loss(hard, y).item()
    ratio_bce = bce_loss(easy, y).item() / bce_loss(hard, y).item()
    assert ratio_focal < ratio_bce


def _outputs_targets(seed=0, B=5):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    out = {"img": r(B, 24), "txt": r(B, 20), "act": r(B, 28), "cls_logits": r(B, 15)}
    tgt = {"img": r(B, 24), "txt": r(B, 20), "act": r(B, 28), "label_vec": (r(B, 15) > 0.5).float()}
    return out, tgt


def test_stage1_loss_combines_with_named_weights():
    out, tgt = _outputs_targets()
    w = LossWeights()
    assert (w.lambda_act, w.lambda_cls, w.temperature) == (0.1, 10.0, 0.07)
    parts = stage1_loss(out, tgt, w)
    expect = (
        info_nce(out["img"], tgt["img"]) + info_nce(out["txt"], tgt["txt"])
        + 0.1 * info_nce(out["act"], tgt["act"]) + 10.0 * category_loss(out["cls_logits"], tgt["label_vec"])
    )
    assert parts["loss"].item() == pytest.approx(expect.item(), rel=1e-6)
    assert set(parts) == {"loss", "img", "txt", "act", "cls"}


def test_stage1_loss_ablation_flags():
    out, tgt = _outputs_targets(seed=2)
    del tgt["act"], tgt["label_vec"]  # not needed when both tasks are off
    parts = stage1_loss(out, tgt, LossWeights(use_action=False, use_cls=False))
    assert set(parts) == {"loss", "img", "txt"}
    assert parts["loss"].item() == pytest.approx((parts["img"] + parts["txt"]).item(), rel=1e-6)
    out, tgt = _outputs_targets(seed=2)
    only_act = stage1_loss(out, tgt, LossWeights(use_cls=False, lambda_act=0.5))
    assert only_act["loss"].item() == pytest.approx((only_act["img"] + only_act["txt"] + 0.5 * only_act["act"]).item(), rel=1e-6)


def test_stage1_loss_has_gradients():
    out, tgt = _outputs_targets(seed=3)
    out = {k: v.requires_grad_() for k, v in out.items()}
    stage1_loss(out, tgt)["loss"].backward()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in out.values())
