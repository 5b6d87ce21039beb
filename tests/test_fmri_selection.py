"""Voxel selection as pure functions: reliability statistics, mask files, hashes, existing masks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cineneuron.errors import CNError
from cineneuron.fmri.selection import (
    VoxelSelection,
    as_mask,
    mask_hash,
    reliability_test,
    repeat_correlation,
    segment_reliability,
    select_voxels,
)

N_VOX, N_VOL, N_SEG = 15, 29, 5
RELIABLE = [2, 7, 11]


def pairs(seed=0):
    """N_SEG segments of two repeats (N_VOL, N_VOX); RELIABLE voxels share a signal, voxel 14 is constant."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_SEG):
        shared = rng.normal(size=N_VOL)
        reps = []
        for _ in range(2):
            r = rng.normal(size=(N_VOL, N_VOX))
            r[:, RELIABLE] += 3.0 * shared[:, None]
            r[:, 14] = 0.0
            reps.append(r)
        out.append(tuple(reps))
    return out


def test_repeat_correlation_matches_numpy():
    a, b = pairs()[0]
    r = repeat_correlation(a, b)
    assert r.shape == (N_VOX,) and r[14] == 0.0
    for v in (0, 2, 9):
        assert np.isclose(r[v], np.corrcoef(a[:, v], b[:, v])[0, 1])


def test_reliability_keeps_reliable_drops_noise_with_bonferroni():
    z = segment_reliability(pairs())
    assert z.shape == (N_SEG, N_VOX)
    dead = np.zeros(N_VOX, bool)
    dead[14] = True
    res = reliability_test(z, 0.05, exclude=dead)
    assert np.flatnonzero(res["mask"]).tolist() == RELIABLE
    assert res["n_tested"] == N_VOX - 1 and np.isclose(res["threshold_p"], 0.05 / (N_VOX - 1))
    assert res["p"][14] == 1.0
    mask, info = select_voxels(VoxelSelection(), N_VOX, z=z, dead=dead)
    assert np.flatnonzero(mask).tolist() == RELIABLE and info["n_tested"] == N_VOX - 1
    with pytest.raises(CNError, match="at least 2"):
        reliability_test(z[:1], 0.05)
    with pytest.raises(CNError, match="no voxel passed"):
        select_voxels(VoxelSelection(alpha=1e-12), N_VOX, z=z, dead=dead)


def test_mask_hash_is_stable_and_length_aware():
    m = np.zeros(16, bool)
    m[[1, 5]] = True
    assert mask_hash(m) == mask_hash(m.copy()) and len(mask_hash(m)) == 16
    longer = np.zeros(17, bool)
    longer[[1, 5]] = True  # same packed bytes for the first 16, but a different length
    assert mask_hash(m) != mask_hash(longer)
    m2 = m.copy()
    m2[5] = False
    assert mask_hash(m) != mask_hash(m2)


def test_as_mask_forms(tmp_path):
    np.save(tmp_path / "i.npy", np.array([4, 0, 9], dtype=np.int32))
    assert np.flatnonzero(as_mask(tmp_path / "i.npy", 10, "t")).tolist() == [0, 4, 9]
    assert as_mask(np.arange(10) < 3, 10, "t").sum() == 3
    for bad in (np.ones(9, bool), np.array([0, 0]), np.array([10]), np.array([0.5])):
        with pytest.raises(CNError):
            as_mask(bad, 10, "t")
    with pytest.raises(CNError, match="does not exist"):
        as_mask(tmp_path / "nope.npy", 10, "t")


def test_existing_mask_rules(tmp_path):
    existing = np.zeros(N_VOX, bool)
    existing[[0, 3]] = True
    z = segment_reliability(pairs())
    mask, info = select_voxels(VoxelSelection(), N_VOX, z=z, existing_mask=existing)
    assert (mask == existing).all() and info["method"].startswith("existing")
    np.save(tmp_path / "m.npy", np.array([0, 3]))
    same, _ = select_voxels(VoxelSelection(method="mask", mask_path=tmp_path / "m.npy"), N_VOX, existing_mask=np.array([0, 3]))
    assert (same == existing).all()
    with pytest.raises(CNError) as err:
        select_voxels(VoxelSelection(method="all"), N_VOX, existing_mask=existing)
    assert mask_hash(existing) in str(err.value) and mask_hash(np.ones(N_VOX, bool)) in str(err.value)
    with pytest.raises(CNError, match="existing mask"):
        select_voxels(VoxelSelection(), N_VOX, z=z, existing_mask=np.ones(N_VOX + 1, bool))


def test_selection_config_validation():
    with pytest.raises(ValidationError):
        VoxelSelection(method="mask")
    with pytest.raises(ValidationError):
        VoxelSelection(alpha=1.5)
    assert VoxelSelection().method == "reliability" and VoxelSelection().alpha == 0.05


def _small_world_z(seed=0, n_seg=4, n_vox=800, n_signal=300, n_vol=120, snr=0.5):
    """Fisher z of repeat correlations in a small cc2017-like world: 4 segments, 800 voxels,
    a shared signal of single-repeat SNR 0.5 in the first n_signal voxels."""
    from cineneuron.fmri.selection import segment_reliability

    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_seg):
        sig = np.zeros((n_vol, n_vox))
        sig[:, :n_signal] = snr * rng.normal(size=(n_vol, n_signal))
        pairs.append((sig + rng.normal(size=sig.shape), sig + rng.normal(size=sig.shape)))
    return segment_reliability(pairs)


def test_few_surviving_voxels_warn_and_fdr_keeps_more():
    from scipy import stats

    from cineneuron.fmri.selection import VoxelSelection, reliability_test, select_voxels

    z = _small_world_z()
    bonf, info = select_voxels(VoxelSelection(), 800, z=z)
    fdr, info_fdr = select_voxels(VoxelSelection(correction="fdr"), 800, z=z)
    print(f"4 segments, 800 voxels, SNR 0.5: Bonferroni keeps {bonf.sum()}, FDR keeps {fdr.sum()}")
    assert bonf.sum() < 100 and "\n" not in info["warning"]
    assert info["warning"].startswith(f"only {bonf.sum()} of 800 voxels passed the reliability test")
    assert fdr.sum() > bonf.sum() and (fdr | bonf).sum() == fdr.sum()  # FDR is the looser of the two
    # Benjamini-Hochberg agrees with scipy's implementation
    p = reliability_test(z, 0.05)["p"]
    assert np.array_equal(fdr, stats.false_discovery_control(p) <= 0.05)
    assert (fdr[300:]).mean() < 0.05  # few false discoveries among the noise voxels
    strong = _small_world_z(snr=2.0, n_signal=400)
    assert "warning" not in select_voxels(VoxelSelection(), 800, z=strong)[1]  # 400 of 800 survive: no warning
