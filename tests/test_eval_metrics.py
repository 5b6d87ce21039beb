"""Evaluation metrics against independent references (scikit-image, torchmetrics) or hand values."""

from __future__ import annotations

import numpy as np
import pytest

from cineneuron.eval.frames import (
    clip_pcc, clip_pcc_features, dtc, dtc_features, psnr, psnr_frames, resize_frames, ssim, ssim_frames, to_gray,
)
from cineneuron.eval.motion import (
    Farneback, dd_threshold, dynamic_degree_flow, dynamic_degree_gap, epe, epe_video, pair_motion_scores,
)
from cineneuron.eval.retrieval import retrieval_both, retrieval_ranks, retrieval_top1
from cineneuron.eval.semantic import (
    label_accuracy_categorical, label_accuracy_multihot, monte_carlo_chance, n_way_chance, n_way_suite, n_way_top_k,
    weighted_vote,
)

T, H, W = 5, 24, 32  # unequal on purpose


@pytest.fixture
def video_pair():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    noise = rng.normal(0, 30, size=gt.shape)
    recon = np.clip(gt + noise, 0, 255).astype(np.uint8)
    return gt, recon


# ------------------------------------------------------------------ SSIM / PSNR


def _skimage_ssim(g, r):
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False) for a, b in zip(g, r)])


def _torchmetrics_ssim(g, r):
    """torchmetrics with the same window (Gaussian, sigma 1.5 → 11 taps) and data range; it
    returns the map over the reflect-padded full image, so crop the 5-pixel border that
    scikit-image leaves out, then average."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    tg = torch.from_numpy(g).permute(0, 3, 1, 2)  # (T, C, H, W) float64
    tr = torch.from_numpy(r).permute(0, 3, 1, 2)
    _, full = structural_similarity_index_measure(tr, tg, gaussian_kernel=True, sigma=1.5, kernel_size=11,
                                                  data_range=1.0, reduction="none", return_full_image=True)
    return full[..., 5:-5, 5:-5].reshape(len(g), -1).mean(1).numpy()


def _torchmetrics_psnr(g, r):
    """torchmetrics builds its log-base constant with the default dtype: use float64 for 1e-6."""
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tg, tr = torch.from_numpy(g).permute(0, 3, 1, 2), torch.from_numpy(r).permute(0, 3, 1, 2)
        return peak_signal_noise_ratio(tr, tg, data_range=1.0, reduction="none", dim=(1, 2, 3)).numpy()
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("color", ["rgb", "gray"])
@pytest.mark.parametrize("resolution", [None, (20, 28)])
def test_ssim_psnr_match_skimage_and_torchmetrics(video_pair, color, resolution):
    from skimage.metrics import peak_signal_noise_ratio

    gt, recon = video_pair
    g, r = gt / 255.0, recon / 255.0
    if resolution is not None:
        g, r = resize_frames(g, resolution), resize_frames(r, resolution)
    if color == "gray":
        g, r = to_gray(g), to_gray(r)
    ours_ssim = ssim_frames(gt, recon, resolution=resolution, color=color)
    ours_psnr = psnr_frames(gt, recon, resolution=resolution, color=color)
    assert ours_ssim.shape == ours_psnr.shape == (T,)
    np.testing.assert_allclose(ours_ssim, _skimage_ssim(g, r), atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours_ssim, _torchmetrics_ssim(g, r), atol=1e-6, rtol=0)
    sk_psnr = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(g, r)]
    np.testing.assert_allclose(ours_psnr, sk_psnr, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours_psnr, _torchmetrics_psnr(g, r), atol=1e-6, rtol=0)


def test_psnr_hand_value_and_summary(video_pair):
    gt = np.full((2, H, W, 3), 0.5)
    recon = gt + 0.1  # MSE 0.01 → 20 dB
    np.testing.assert_allclose(psnr_frames(gt, recon), [20.0, 20.0], atol=1e-9)
    out = psnr([gt, gt], [recon, gt], resolution=(12, 16))
    assert out["n"] == 2 and out["resolution"] == [12, 16] and "12x16" in out["variant"]
    assert out["per_item"][0] == pytest.approx(20.0) and np.isinf(out["per_item"][1])
    s = ssim(*[[v] for v in video_pair], color="gray")
    assert 0 < s["value"] < 1 and "gray" in s["variant"]


def test_recon_frame_count_is_aligned_to_gt(video_pair):
    gt, _ = video_pair
    longer = np.repeat(gt, 2, axis=0)  # (2T, H, W, 3): every frame twice
    assert ssim_frames(gt, longer).shape == (T,)
    np.testing.assert_allclose(ssim_frames(gt, longer), 1.0, atol=1e-12)


# ------------------------------------------------------------------ CLIP-pcc / DTC


def test_clip_pcc_and_dtc_of_static_video_are_one():
    f = np.tile(np.random.default_rng(1).normal(size=(1, 13)), (7, 1))  # (T, D) all frames alike
    assert clip_pcc_features(f, "adjacent") == pytest.approx(1.0, abs=1e-12)
    assert clip_pcc_features(f, "all") == pytest.approx(1.0, abs=1e-12)
    assert dtc_features(f)["value"] == pytest.approx(1.0, abs=1e-12)


def test_clip_pcc_and_dtc_hand_values():
    f = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])  # cos: (0,1)=0, (1,2)=0, (0,2)=-1
    assert clip_pcc_features(f, "adjacent") == pytest.approx(0.0)
    assert clip_pcc_features(f, "all") == pytest.approx(-1 / 3)
    d = dtc_features(f)  # prev: [0, 0]; first: [0, max(0, -1)=0]
    assert d["value"] == pytest.approx(0.0) and d["to_first"] == pytest.approx(0.0)
    g = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # prev: [c, c], first: [c, 0], c = 1/√2
    c = 1 / np.sqrt(2)
    assert dtc_features(g)["value"] == pytest.approx(((c + c) / 2 + (c + 0) / 2) / 2)
    out = clip_pcc([f, g], "adjacent")
    assert out["n"] == 2 and out["value"] == pytest.approx((0.0 + c) / 2)
    assert dtc([f, g])["to_previous"] == pytest.approx((0 + c) / 2)


# ------------------------------------------------------------------ retrieval


def test_retrieval_identity_is_one_and_pool_is_reported():
    rng = np.random.default_rng(2)
    e = rng.normal(size=(350, 19))
    both = retrieval_both(e, e, n_subsets=5)
    for d in ("fmri_to_clip", "clip_to_fmri"):
        assert both[d]["value"] == 1.0 and both[d]["pool_size"] == 300 and both[d]["n_subsets"] == 1  # 350 // 300 blocks
    mind = retrieval_both(e, e, n_subsets=5, protocol="mindeye2")
    for d in ("fmri_to_clip", "clip_to_fmri"):
        assert mind[d]["value"] == 1.0 and mind[d]["pool_size"] == 300 and mind[d]["n_subsets"] == 5
        assert both[d]["chance"] == pytest.approx(1 / 300)
    eye = np.eye(40)  # fewer than 300 items: all of them, one subset
    small = retrieval_top1(eye, eye)
    assert (small["value"], small["pool_size"], small["n_subsets"], small["chance"]) == (1.0, 40, 1, 1 / 40)
    assert "top1-of-40" in small["variant"]


def test_retrieval_random_is_chance():
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=(600, 32)), rng.normal(size=(600, 32))
    both = retrieval_both(pred, target, n_subsets=30, seed=4, protocol="mindeye2")
    print(f"random retrieval top-1/300: fmri->clip {both['fmri_to_clip']['value']:.4f} "
          f"clip->fmri {both['clip_to_fmri']['value']:.4f} (chance {1 / 300:.4f})")
    for d in ("fmri_to_clip", "clip_to_fmri"):
        assert abs(both[d]["value"] - 1 / 300) < 0.002


def test_retrieval_hand_case_fmri_to_clip_differs_from_clip_to_fmri():
    target = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pred = np.array([[1.0, 0.1], [1.0, 0.2], [1.0, 1.0]])  # pred 1 is closest to target 0
    fwd = retrieval_top1(pred, target)  # rows: 0 ✓, 1 ✗ (target 0 or 2 nearer), 2 ✓
    bwd = retrieval_top1(pred, target, direction="clip_to_fmri")  # target 0 → pred 0 ✓; 1 → pred 2?; 2 → pred 2 ✓
    assert fwd["value"] == pytest.approx(2 / 3)
    sim = (target / np.linalg.norm(target, axis=1, keepdims=True)) @ (pred / np.linalg.norm(pred, axis=1)[:, None]).T
    assert bwd["value"] == pytest.approx(np.mean(sim.argmax(1) == np.arange(3)))
    ranks = retrieval_ranks(pred, target)
    assert ranks.tolist()[0] == 0 and ranks[1] > 0 and ranks[2] == 0


# ------------------------------------------------------------------ n-way semantic


def test_monte_carlo_chance_matches_analytic():
    # trials of one item are correlated, so the noise is ~0.29/sqrt(items): use many items
    peer = monte_carlo_chance(2, variant="peer", n_classes=40, n_items=3000, n_trials=5)
    strict = monte_carlo_chance(2, variant="strict", n_classes=40, n_items=3000, n_trials=5)
    print(f"2-way chance, random classifier: peer-compatible {peer:.4f} (analytic 0.75),"
          f" strict {strict:.4f} (analytic 0.5)")
    assert abs(peer - 0.75) < 0.02 and abs(strict - 0.5) < 0.02
    assert n_way_chance(2, gt_top=3) == 0.75 and n_way_chance(2, gt_top=1) == 0.5
    assert n_way_chance(50, gt_top=3) == pytest.approx(3 / 52)
    mc50 = monte_carlo_chance(50, variant="peer", n_classes=60, n_items=1500, n_trials=5)
    assert abs(mc50 - 3 / 52) < 0.015
    # top-2 of 3-way with the gt top-1: chance 2/3 by symmetry; the formula agrees
    assert n_way_chance(3, gt_top=1, top_k=2) == pytest.approx(2 / 3)
    assert abs(monte_carlo_chance(3, variant="strict", n_classes=30, n_items=1500, n_trials=5, top_k=2) - 2 / 3) < 0.02


def test_n_way_perfect_and_result_fields():
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(60), size=(4, 3))  # (N, T, C) frame-based: 12 items
    r = n_way_top_k(probs, probs, 50, variant="strict", n_trials=20)
    assert r["value"] == 1.0 and r["n"] == 12 and r["std"] == 0.0
    assert r["chance"] == pytest.approx(1 / 50) and r["variant"].startswith("strict: gt top-1 vs 49 random")
    suite = n_way_suite(probs[:, 0], probs[:, 1], n_trials=10)
    assert set(suite) == {"2way", "50way"} and set(suite["2way"]) == {"peer", "strict"}
    r2 = suite["2way"]["peer"]
    assert r2["std"] == r2["std_peer"] and "std_peer" in r2["std_convention"] and r2["sem"] >= 0
    with pytest.raises(ValueError):
        n_way_top_k(probs[:, :, :10], probs[:, :, :10], 50)


def test_n_way_peer_hit_when_any_gt_top3_wins():
    # gt's top-3: classes 0, 1, 2. The reconstruction ranks class 2 above everything else only.
    gt = np.array([[0.5, 0.3, 0.15, 0.01, 0.01, 0.01, 0.01, 0.01]])
    pred = np.array([[0.0, 0.0, 0.9, 0.02, 0.02, 0.02, 0.02, 0.02]])
    assert n_way_top_k(pred, gt, 4, variant="peer")["value"] == 1.0
    assert n_way_top_k(pred, gt, 4, variant="strict")["value"] == 0.0  # class 0 never wins


def test_n_way_ties_are_misses_as_in_mind_video():
    # an all-equal prediction: every drawn class ties with the correct one -> 0, not 1
    gt = np.array([[0.5, 0.3, 0.15, 0.05] + [0.0] * 6])
    flat = np.full((1, 10), 0.1)
    for variant in ("peer", "strict"):
        assert n_way_top_k(flat, gt, 2, variant=variant, n_trials=50)["value"] == 0.0
    # float16-style tie: class 0 (gt top-1) ties with exactly one of the 9 others and beats
    # the rest, so a 2-way trial misses when it draws that one: p = 8/9 (it was 1.0 with `>`)
    pred = np.array([[0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    gt1 = np.array([[0.9, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    r = n_way_top_k(pred, gt1, 2, variant="strict", n_trials=4000)
    assert abs(r["value"] - 8 / 9) < 0.02 and r["value"] < 1.0


def test_n_way_error_bars_peer_convention_and_standard_error():
    # 11 items, 11 classes, gt top-1 = class 0; in item j exactly j of the 10 others score
    # below class 0, so its 2-way hit rate is j/10 whatever is drawn (in expectation)
    n_cls, trials = 11, 4000
    gt = np.zeros((n_cls, n_cls)); gt[:, 0] = 1.0
    pred = np.zeros((n_cls, n_cls))
    for j in range(n_cls):
        pred[j, 0] = j - 0.5
        pred[j, 1:] = np.arange(10)  # others 0..9: j of them below j - 0.5
    r = n_way_top_k(pred, gt, 2, variant="strict", n_trials=trials)
    p = np.arange(n_cls) / 10
    peers = np.mean(np.sqrt(p * (1 - p) / trials))  # MinD-Video's per-item std, averaged
    sem = np.std(p, ddof=1) / np.sqrt(n_cls)
    pooled = np.sqrt(0.5 * 0.5 / (n_cls * trials))  # the old, mislabelled figure
    print(f"2-way ±: peers' {r['std_peer']:.4f} (expected {peers:.4f}), sem {r['sem']:.4f} "
          f"(expected {sem:.4f}), pooled binomial would be {pooled:.4f}")
    assert abs(r["value"] - 0.5) < 0.01
    assert r["std"] == r["std_peer"] == pytest.approx(peers, rel=0.02)
    assert r["sem"] == pytest.approx(sem, rel=0.02)
    assert r["std_peer"] > 1.5 * pooled


# ------------------------------------------------------------------ label-based


def test_weighted_vote_and_multihot_accuracy_by_hand():
    mem = np.array([  # (Q=2, K=2, L=3)
        [[1, 0, 0], [0, 1, 1]],
        [[0, 0, 1], [0, 0, 1]],
    ], dtype=float)
    scores = np.array([[0.6, 0.2], [-0.1, -0.3]])  # q1 weights 3/4, 1/4; q2 all ≤ 0 → equal
    vote = weighted_vote(mem, scores)
    np.testing.assert_allclose(vote, [[0.75, 0.25, 0.25], [0, 0, 1]])
    truth = np.array([[0, 1, 0], [0, 0, 1]], dtype=float)
    r = label_accuracy_multihot(mem, scores, truth)
    assert r["top1"]["value"] == pytest.approx(0.5)  # q1 votes class 0 (wrong), q2 class 2 (right)
    assert r["jaccard"]["value"] == pytest.approx((0 + 1) / 2)  # q1 pred {0} vs {1}: 0
    assert 0 <= r["top1"]["chance"] <= 1 and r["top1"]["n"] == 2


def test_categorical_accuracy_by_hand():
    mem = np.array([[0, 1, 1], [2, 2, 0], [1, 0, 0]])  # (Q=3, K=3) action class per memory
    scores = np.array([[0.9, 0.3, 0.3], [0.1, 0.1, 0.5], [1.0, 0.0, 0.0]])
    truth = np.array([0, 0, 0])  # votes: q1 0 (0.9 vs 0.6), q2 0 (0.5 vs 0.2), q3 1
    r = label_accuracy_categorical(mem, scores, truth, n_classes=3)
    assert r["value"] == pytest.approx(2 / 3)
    assert r["std"] == pytest.approx(np.sqrt(2 / 3 * 1 / 3 / 3))


# ------------------------------------------------------------------ motion


def _texture(h, w, seed=0):
    from scipy.ndimage import gaussian_filter

    n = gaussian_filter(np.random.default_rng(seed).normal(size=(h, w)), 2.0)
    n = (n - n.min()) / (n.max() - n.min())
    return np.repeat((n * 255).astype(np.uint8)[..., None], 3, axis=-1)  # (h, w, 3)


def _translating_video(dx, dy, n=3, h=64, w=80):
    """Frames of a texture moving (dx, dy) pixels per frame, cut from a larger canvas."""
    big = _texture(h + 40, w + 40)
    return np.stack([big[20 - i * dy: 20 - i * dy + h, 20 - i * dx: 20 - i * dx + w] for i in range(n)])


def test_farneback_epe_of_known_translation_is_small():
    dx, dy = 2, 1
    video = _translating_video(dx, dy)  # (3, 64, 80, 3)
    flow = Farneback().flow(video)
    assert flow.shape == (2, 64, 80, 2)
    known = np.broadcast_to(np.array([dx, dy], float), flow.shape)
    inner = (slice(None), slice(12, -12), slice(12, -12))  # borders see texture entering the view
    err = epe(flow[inner], known[inner])
    print(f"Farnebäck EPE against a known ({dx}, {dy}) px translation: {err:.2e} px")
    assert err < 0.25
    assert epe_video(video, video) == 0.0
    assert epe_video(video, video[:1].repeat(3, 0)) > 1.0  # a frozen reconstruction misses the motion


def test_dynamic_degree_threshold_and_gap():
    assert dd_threshold(256, 512) == 6.0 and dd_threshold(64, 80) == pytest.approx(1.5)
    f = np.zeros((4, 10, 20, 2))
    f[:2, :1, :10] = [8.0, 6.0]  # 10 px magnitude on 10 of 200 pixels (the top 5%) in pairs 0 and 1
    np.testing.assert_allclose(pair_motion_scores(f), [10, 10, 0, 0])
    np.testing.assert_allclose(pair_motion_scores(f, "mean"), [0.5, 0.5, 0, 0])
    d = dynamic_degree_flow(f)  # threshold 6·10/256; 2 of 4 pairs move; VBench needs round(4·5/16)=1
    assert d["value"] == 0.5 and d["is_dynamic"]
    moving = _translating_video(4, 0, n=4)
    still = moving[:1].repeat(4, 0)
    gap = dynamic_degree_gap([moving], [still])
    assert gap["gt"]["value"] == 1.0 and gap["recon"]["value"] == 0.0 and gap["gap"]["value"] == 1.0


def test_paired_bootstrap_diff_hand_cases_and_normal_width():
    from cineneuron.eval.semantic import paired_bootstrap_diff

    same = paired_bootstrap_diff([1, 0, 1, 1], [1, 0, 1, 1])
    assert same["value"] == same["low"] == same["high"] == 0.0 and same["n"] == 4
    all_or_none = paired_bootstrap_diff([1] * 5, [0] * 5)
    assert all_or_none["value"] == all_or_none["low"] == all_or_none["high"] == 1.0
    rng = np.random.default_rng(3)
    a = rng.random(400) < 0.45
    b = np.where(rng.random(400) < 0.7, a, rng.random(400) < 0.35)  # correlated, as two retrievals of one query are
    r = paired_bootstrap_diff(a, b, n_boot=4000, seed=1)
    d = a.astype(float) - b
    assert r["value"] == pytest.approx(d.mean())
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))  # the normal-approximation interval of a paired mean
    assert (r["high"] - r["low"]) / 2 == pytest.approx(half, rel=0.12)
    assert r["low"] < d.mean() < r["high"]
    with pytest.raises(ValueError):
        paired_bootstrap_diff([1, 0], [1])
