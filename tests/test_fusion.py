"""MoM fusion: identity at init, padding, shapes. Unequal dims throughout so axis mix-ups fail."""

import pytest
import torch
from pydantic import ValidationError

from cineneuron.decode.fusion import FusionConfig, MoMFusion, pad_tokens

B, LF, DF, K, DI, DA, DC = 3, 7, 8, 5, 9, 11, 12


def _inputs(lens=(6, 4, 5), d_c=DC, l_f=LF, seed=0):
    g = torch.Generator().manual_seed(seed)
    fmri = torch.randn(B, l_f, DF, generator=g)  # (B, L_f, D_f)
    img = torch.randn(B, K, DI, generator=g)  # (B, k, d_img)
    act = torch.randn(B, K, DA, generator=g)  # (B, k, d_act)
    t_star, mask = pad_tokens([torch.randn(n, d_c, generator=g) for n in lens])  # (B, L_t, D_c)
    return fmri, img, act, t_star, mask


def _randomise(m: torch.nn.Module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_identity_at_init_with_resampler():
    fus = MoMFusion(FusionConfig(d_f=DF, d_img=DI, d_act=DA, d_c=DC))
    fmri, img, act, t_star, mask = _inputs()
    assert torch.equal(fus(fmri, img, act, t_star, mask), t_star)
    assert torch.equal(fus(fmri, img, act, t_star), t_star)  # no mask


def test_identity_at_init_without_resampler():
    # F already has T*'s token count (6); widths still differ, Z_f maps D_f -> D_c
    fus = MoMFusion(FusionConfig(d_f=DF, d_img=DI, d_act=DA, d_c=DC, resample=False))
    fmri, img, act, t_star, mask = _inputs(l_f=6)
    assert fus.resampler is None
    assert torch.equal(fus(fmri, img, act, t_star, mask), t_star)


def test_identity_keeps_half_precision_input():
    fus = MoMFusion(FusionConfig(d_f=DF, d_img=DI, d_act=DA, d_c=DC))
    fmri, img, act, t_star, mask = _inputs()
    t16 = t_star.half()
    out = fus(fmri, img, act, t16, mask)
    assert out.dtype == torch.float16 and torch.equal(out, t16)


def test_trained_fusion_changes_real_tokens_only():
    fus = MoMFusion(FusionConfig(d_f=DF, d_img=DI, d_act=DA, d_c=DC, lam=0.5))
    _randomise(fus)
    fmri, img, act, t_star, mask = _inputs()
    out = fus(fmri, img, act, t_star, mask)
    assert out.shape == (B, 6, DC)
    assert torch.equal(out[~mask], t_star[~mask])  # padding stays exactly zero
    assert (out[mask] - t_star[mask]).abs().min() > 0
    # the fMRI branch matters: another F gives another C
    assert not torch.allclose(out, fus(fmri + 1.0, img, act, t_star, mask))


def test_lambda_scales_fmri_branch():
    cfg = dict(d_f=DF, d_img=DI, d_act=DA, d_c=DC)
    a, b = MoMFusion(FusionConfig(**cfg, lam=0.0)), MoMFusion(FusionConfig(**cfg, lam=1.0))
    _randomise(a)
    b.load_state_dict(a.state_dict())
    fmri, img, act, t_star, mask = _inputs()
    base = t_star + torch.where(mask[..., None], a.z_t(t_star), torch.zeros(()))
    torch.testing.assert_close(a(fmri, img, act, t_star, mask), base)
    assert not torch.allclose(b(fmri, img, act, t_star, mask), base)


def test_pad_tokens():
    t, m = pad_tokens([torch.ones(2, 4), torch.ones(3, 4).numpy()], length=5)
    assert t.shape == (2, 5, 4) and m.shape == (2, 5)
    assert m.sum(1).tolist() == [2, 3]
    assert t[0, 2:].abs().sum() == 0 and t[1, :3].eq(1).all()
    with pytest.raises(ValueError):
        pad_tokens([torch.ones(6, 4)], length=5)


def test_shape_errors():
    fus = MoMFusion(FusionConfig(d_f=DF, d_img=DI, d_act=DA, d_c=DC, resample=False))
    fmri, img, act, t_star, mask = _inputs()  # L_f=7 != L_t=6
    with pytest.raises(ValueError, match="resample=True"):
        fus(fmri, img, act, t_star, mask)
    with pytest.raises(ValueError, match="img"):
        fus(fmri[:, :6], act, act, t_star, mask)
    with pytest.raises(ValidationError):
        FusionConfig(d_f=DF, d_img=DI, d_act=DA, d_c=10, heads=4)
