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
