"""Retrieval directions named as the peers compute them, and their two subset protocols."""

from __future__ import annotations

import numpy as np
import pytest

from cineneuron.eval.report import paper_table
from cineneuron.eval.retrieval import PEER_NAME, retrieval_both, retrieval_top1, subset_indices


def _peer_top1(brain: np.ndarray, clip: np.ndarray) -> dict:
    """MindEye2 / NeuroClips, restated: batchwise_cosine_similarity(Z, B) = (Z @ B.T).T on unit
    vectors; fwd = bcs(brain, clip), bwd = bcs(clip, brain); top-1 = row argmax is the row's own."""
    z = brain / np.linalg.norm(brain, axis=1, keepdims=True)
    b = clip / np.linalg.norm(clip, axis=1, keepdims=True)
    fwd_sim, bwd_sim = (z @ b.T).T, (b @ z.T).T
    hit = lambda s: float(np.mean(s.argmax(1) == np.arange(len(s))))  # noqa: E731
    return {"forward": hit(fwd_sim), "backward": hit(bwd_sim)}


def _pool_of_300(seed: int = 7):
    rng = np.random.default_rng(seed)
    clip = rng.normal(size=(300, 24))
    # 40 predictions share one offset: they crowd together, so the two directions differ
    brain = clip + 1.3 * rng.normal(size=clip.shape)
    brain[:40] += 3.0 * rng.normal(size=clip.shape[1])
    return brain, clip


def test_clip_to_fmri_is_the_peers_forward_on_a_fixed_300_pool():
    brain, clip = _pool_of_300()
    peer = _peer_top1(brain, clip)
    ours = retrieval_both(brain, clip)  # 300 items: the pool is all of them, both protocols alike
    print(f"peers forward {peer['forward']:.4f} = ours clip_to_fmri {ours['clip_to_fmri']['value']:.4f}; "
          f"peers backward {peer['backward']:.4f} = ours fmri_to_clip {ours['fmri_to_clip']['value']:.4f}")
    assert ours["clip_to_fmri"]["value"] == peer["forward"]
    assert ours["fmri_to_clip"]["value"] == peer["backward"]
    assert peer["forward"] != peer["backward"]  # the naming matters on this matrix
    assert PEER_NAME == {"clip_to_fmri": "forward", "fmri_to_clip": "backward"}
    assert ours["clip_to_fmri"]["peer_name"] == "forward" and "(peers' forward)" in ours["clip_to_fmri"]["variant"]


def _planted(n=1200, d=32, rho=0.8, noise=1.5, seed=0):
    """Clips in time order whose embeddings follow an AR(1) with neighbour correlation rho."""
    rng = np.random.default_rng(seed)
    t = np.zeros((n, d))
    t[0] = rng.normal(size=d)
    for i in range(1, n):
        t[i] = rho * t[i - 1] + np.sqrt(1 - rho ** 2) * rng.normal(size=d)
    return t + noise * rng.normal(size=(n, d)), t


def test_subset_protocols_give_the_documented_values_on_correlated_clips():
    pred, target = _planted()
    nc = retrieval_top1(pred, target, protocol="neuroclips")
    me = retrieval_top1(pred, target, protocol="mindeye2")
    print(f"neighbour corr 0.8, fmri_to_clip: neuroclips {nc['value']:.4f} ({nc['n_subsets']} blocks), "
          f"mindeye2 {me['value']:.4f} ({me['n_subsets']} random subsets)")
    # the documented figures (NOTES.md, "Evaluation"): 0.571 vs 0.670
    assert nc["value"] == pytest.approx(0.5708, abs=5e-4) and me["value"] == pytest.approx(0.6698, abs=5e-4)
    assert nc["n_subsets"] == 4 and me["n_subsets"] == 30 and nc["pool_size"] == me["pool_size"] == 300
    assert nc["protocol"] == "neuroclips" and "4 contiguous blocks in time order" in nc["variant"]
    # the neuroclips value is the mean of the four blocks 0-299, 300-599, ... scored one by one
    blocks = [retrieval_top1(pred[i:i + 300], target[i:i + 300])["value"] for i in range(0, 1200, 300)]
    assert nc["value"] == pytest.approx(np.mean(blocks))
    # with uncorrelated clips the protocols agree (within noise): the gap is the neighbours
    p0, t0 = _planted(rho=0.0)
    a, b = (retrieval_top1(p0, t0, protocol=p)["value"] for p in ("neuroclips", "mindeye2"))
    assert abs(a - b) < 0.02 < me["value"] - nc["value"]


def test_subset_indices_layout_and_default():
    blocks = subset_indices(1250, "neuroclips")
    assert [b[[0, -1]].tolist() for b in blocks] == [[0, 299], [300, 599], [600, 899], [900, 1199]]
    assert "last 50 items left out" in retrieval_top1(np.eye(1250), np.eye(1250))["variant"]
    rand = subset_indices(1250, "mindeye2", seed=3)
    assert len(rand) == 30 and all(len(set(r.tolist())) == 300 for r in rand)
    assert [b.tolist() for b in subset_indices(120, "mindeye2")] == [list(range(120))]
    assert retrieval_top1(np.eye(5), np.eye(5))["protocol"] == "neuroclips"  # the paper's is the default
    with pytest.raises(ValueError):
        subset_indices(10, "random")


def test_paper_table_maps_peer_forward_to_clip_to_fmri_and_needs_their_protocol():
    pred, target = _planted()
    res = {"retrieval": retrieval_both(pred, target)}
    rows = {r["key"]: r for r in paper_table(res, "cc2017")}
    fwd = rows["retrieval.clip_to_fmri"]
    assert fwd["paper"] == 0.283 and fwd["neuroclips"] == 0.222 and fwd["comparable"]
    assert "peers' forward = ours clip_to_fmri" in fwd["metric"]
    assert rows["retrieval.fmri_to_clip"]["neuroclips"] == 0.188
    assert fwd["ours"] == res["retrieval"]["clip_to_fmri"]["value"]
    other = {"retrieval": retrieval_both(pred, target, protocol="mindeye2")}
    r2 = {r["key"]: r for r in paper_table(other, "cc2017")}["retrieval.clip_to_fmri"]
    assert not r2["comparable"] and "protocol mindeye2" in r2["why_not"]
