"""Query inputs: every file format lands in (N, n_tr, n_voxels); bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest

from cineneuron.decode.inputs import load_fmri_file
from cineneuron.errors import CNError

N_TR, V = 2, 9


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(3, N_TR, V)).astype(np.float32)


def test_npy_npz_h5(tmp_path, x):
    import h5py

    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", voxels=x, other=np.zeros(2))
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["voxels"] = x
    for name in ("a.npy", "b.npz", "c.h5"):
        np.testing.assert_array_equal(load_fmri_file(tmp_path / name, N_TR, V), x)


def test_single_sample_shapes(tmp_path, x):
    np.save(tmp_path / "one.npy", x[0])  # (n_tr, V)
    assert load_fmri_file(tmp_path / "one.npy", N_TR, V).shape == (1, N_TR, V)
    np.save(tmp_path / "flat.npy", x[:, 0])  # (N, V) with n_tr 1
    assert load_fmri_file(tmp_path / "flat.npy", 1, V).shape == (3, 1, V)


def test_source_space_is_masked(tmp_path, x):
    mask = np.zeros(14, bool)
    mask[[0, 2, 3, 5, 7, 8, 10, 11, 13]] = True
    full = np.zeros((3, N_TR, 14), np.float32)
    full[..., mask] = x
    np.save(tmp_path / "full.npy", full)
    np.testing.assert_array_equal(load_fmri_file(tmp_path / "full.npy", N_TR, V, mask), x)


def test_nifti(tmp_path, x):
    import nibabel as nib

    img = nib.Nifti1Image(x[0][None, None].astype(np.float32), np.eye(4))  # (1, 1, n_tr, V)
    nib.save(img, tmp_path / "a.nii.gz")
    np.testing.assert_allclose(load_fmri_file(tmp_path / "a.nii.gz", N_TR, V), x[:1])


@pytest.mark.parametrize("bad,match", [("nan", "NaN"), ("voxels", "voxels"), ("tr", "shape"), ("corrupt", "cannot read")])
def test_bad_input(tmp_path, x, bad, match):
    p = tmp_path / "q.npy"
    if bad == "nan":
        x[2, 1, 4] = np.nan
        np.save(p, x)
    elif bad == "voxels":
        np.save(p, x[..., :-1])
    elif bad == "tr":
        np.save(p, np.concatenate([x, x], axis=1))
    else:
        p.write_bytes(b"not numpy")
    with pytest.raises(CNError, match=match) as e:
        load_fmri_file(p, N_TR, V)
    assert "\n" not in str(e.value)
