"""cc2017 ingestion on tiny files in the real formats: CIFTI-2 raw runs and .mat v5 / v7.3."""

from __future__ import annotations

import numpy as np
import pytest
from fmri_fixtures import N_CORTEX, SPIKE, trim_of, write_cc2017_mat, write_cc2017_raw

from cineneuron.errors import CNError
from cineneuron.fmri import VoxelSelection, format_qc, load_cc2017_subject
from cineneuron.fmri.preprocess import detrend, preprocess_run, trim_run, zscore
from cineneuron.fmri.readers import is_hdf5, read_cifti_cortex
from cineneuron.schemas.records import clip_id

N_KEEP = 23
ALL = VoxelSelection(method="all")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("cc2017raw")
    truth = write_cc2017_raw(root, n_keep=N_KEEP)
    data = load_cc2017_subject(root, 1, n_keep=N_KEEP, selection=ALL, test_single_repeats=True)
    return root, truth, data


def samples(data, split=None) -> dict[str, tuple]:
    """sample_id -> (clip_id, repeat, voxels (n_tr, V)) over all batches (small batches on purpose)."""
    out = {}
    for b in data.batches(batch_size=17, split=split):
        for i, sid in enumerate(b.sample_id):
            out[sid] = (b.clip_id[i], int(b.repeat[i]), b.voxels[i])
    return out


def sid(run, t, rep):
    return f"cc2017-sub1-{run}-t{t:03d}-r{'avg' if rep < 0 else rep}"


# --- pure preprocessing -----------------------------------------------------------------------


def test_trim_per_run_type():
    for name, n_raw in (("seg3", 1 + N_KEEP + 4), ("test1", 1 + N_KEEP + 4), ("test2", 2 + N_KEEP + 4), ("test5", 2 + N_KEEP + 4)):
        head, tail = trim_of(name)
        run = np.arange(n_raw, dtype=float)[:, None] * np.ones((1, 3))  # (n_raw, 3): value = volume
        out = trim_run(run, head, tail, N_KEEP, name)
        assert out.shape == (N_KEEP, 3)
        assert out[0, 0] == head and out[-1, 0] == n_raw - tail - 1
    with pytest.raises(CNError, match="seg9"):
        trim_run(np.zeros((N_KEEP + 4, 2)), 1, 4, N_KEEP, "seg9")


def test_detrend_removes_polynomial_drift():
    rng = np.random.default_rng(0)
    n = 31
    x = np.linspace(-1, 1, n)
    signal = np.sin(np.arange(n) * 2.3)[:, None] * np.ones((1, 5))  # (n, 5), fast: not a polynomial
    drift = np.polynomial.polynomial.polyvander(x, 4) @ rng.normal(scale=100, size=(5, 5))  # (n, 5)
    out = detrend(drift + signal, 4)
    assert np.abs(detrend(drift, 4)).max() < 1e-8
    for v in range(5):
        assert np.corrcoef(out[:, v], signal[:, v])[0, 1] > 0.95
    assert np.abs(out.mean(axis=0)).max() < 1e-8


def test_zscore_constant_is_zero_and_nan_names_run():
    data = np.random.default_rng(1).normal(size=(13, 4)) * 7 + 3
    data[:, 2] = 4.0
    out, info = preprocess_run(data, "seg4 repeat 2", detrend_order=2)
    assert np.isfinite(out).all() and (out[:, 2] == 0).all() and info.constant.tolist() == [2]
    assert np.allclose(out[:, [0, 1, 3]].mean(0), 0, atol=1e-6) and np.allclose(out[:, [0, 1, 3]].std(0, ddof=1), 1, atol=1e-5)  # N-1, as MATLAB
    assert (zscore(np.ones((5, 2))) == 0).all()
    data[:, 0] = np.nan  # a voxel missing from the whole run: 0, reported as NaN, not constant
    out, info = preprocess_run(data, "seg4 repeat 2", detrend_order=2)
    assert (out[:, 0] == 0).all() and info.nan.tolist() == [0] and info.constant.tolist() == [2]
    data[3, 1] = np.nan
    with pytest.raises(CNError, match="seg4 repeat 2"):
        preprocess_run(data, "seg4 repeat 2", detrend_order=2)


# --- raw CIFTI --------------------------------------------------------------------------------


def test_cifti_reader_takes_cortex_from_axis(raw):
    _, truth, _ = raw
    cortex, step = read_cifti_cortex(truth.files[0])
    assert cortex.shape == (1 + N_KEEP + 4, N_CORTEX) and step == 2.0
    assert cortex.max() < 5000  # the subcortical 1e4 junk is left out


def test_raw_planted_response_at_clip_and_lag(raw):
    _, truth, data = raw
    assert data.n_voxels == N_CORTEX and data.n_tr == 1 and data.mask.size == N_CORTEX
    s = samples(data)
    seg, rep, t, v = truth.train_spike
    hit = s[sid(seg, t, rep)]
    assert hit[0] == clip_id("cc2017", f"stimuli/{seg}.mp4", t * 2.0, t * 2.0 + 2.0)
    assert hit[2].shape == (1, N_CORTEX)
    assert hit[2][0, v] > 3.0
    others = [s[sid(seg, t - 1, rep)], s[sid(seg, t + 1, rep)], s[sid(seg, t, 1 - rep)]]
    assert all(abs(o[2][0, v]) < 2.0 for o in others)
    # The test run whose trim drops 2 volumes first: the spike lands on its clip in the average.
    name, tt, tv = truth.test_spike
    assert trim_of(name) == (2, 4)
    avg = s[sid(name, tt, -1)]
    assert avg[0] == clip_id("cc2017", f"stimuli/{name}.mp4", tt * 2.0, tt * 2.0 + 2.0)
    assert avg[2][0, tv] > 3.0
    assert abs(s[sid(name, tt - 1, -1)][2][0, tv]) < 2.0 and abs(s[sid(name, tt + 1, -1)][2][0, tv]) < 2.0


def test_lag_never_past_run_end(raw):
    root, truth, data = raw
    for run in data.runs:
        assert run.tr_index.tolist() == list(range(N_KEEP - truth.lag_tr))
        assert (run.response_start == run.tr_index + truth.lag_tr).all()
        assert run.response_start.max() + data.n_tr <= run.data.shape[0]
    assert data.n_samples["train"] == len(truth.segments) * 2 * (N_KEEP - 2)
    longer = load_cc2017_subject(root, 1, n_keep=N_KEEP, selection=ALL, lag_s=6.0, n_tr=2)
    assert longer.n_samples["train"] == len(truth.segments) * 2 * (N_KEEP - 3 - 1)
    b = next(longer.batches(8))
    assert b.voxels.shape == (8, 2, N_CORTEX)
    with pytest.raises(CNError, match="whole number"):
        load_cc2017_subject(root, 1, n_keep=N_KEEP, selection=ALL, lag_s=3.0)


def test_zscore_per_run_and_constant_voxel(raw):
    _, truth, data = raw
    keep = [v for v in range(N_CORTEX) if v != truth.constant_voxel]
    for run in data.runs:
        if run.repeat < 0:
            continue  # an average of z-scored repeats is not itself z-scored
        assert run.data.shape == (N_KEEP, N_CORTEX)
        assert np.allclose(run.data[:, keep].mean(0), 0, atol=1e-5)
        assert np.allclose(run.data[:, keep].std(0, ddof=1), 1, atol=1e-4)  # N-1, as MATLAB
        assert (run.data[:, truth.constant_voxel] == 0).all()
    assert data.qc["n_constant"] == 1 and data.qc["n_nan"] == 0


def test_repeats_train_separate_test_average(raw):
    _, truth, data = raw
    train = samples(data, "train")
    assert {r for _, r, _ in train.values()} == {0, 1}
    test = samples(data, "test")
    assert {r for _, r, _ in test.values()} == {-1, 0, 1, 2}
    for name in truth.tests:
        for t in (0, 9, N_KEEP - 3):
            singles = np.stack([test[sid(name, t, r)][2] for r in range(truth.n_test_repeats)])
            avg = test[sid(name, t, -1)]
            assert np.allclose(avg[2], singles.mean(0), atol=1e-6)
            assert all(test[sid(name, t, r)][0] == avg[0] for r in range(truth.n_test_repeats))
    assert all(b.split == ["test"] * len(b) for b in data.batches(50, split="test"))


def test_qc_is_printable(raw):
    _, _, data = raw
    text = format_qc(data.qc)
    assert "cc2017 subject 1" in text and "15 of 15" in text and "median" in text


# --- selection --------------------------------------------------------------------------------


def test_reliability_selection_keeps_planted_voxels(raw):
    root, truth, _ = raw
    data = load_cc2017_subject(root, 1, n_keep=N_KEEP)
    assert np.flatnonzero(data.mask).tolist() == truth.reliable
    assert data.n_voxels == len(truth.reliable) and data.reliability.shape == (len(truth.reliable),)
    assert data.reliability.min() > 0.8
    qc = data.qc
    assert qc["n_voxels"] == 4 and qc["n_source_voxels"] == N_CORTEX
    assert qc["selection"]["n_tested"] == N_CORTEX - 1  # the constant voxel is not tested
    assert qc["n_dropped_constant_or_nan"] == 1 and qc["reliability_median"] > 0.8
    b = next(data.batches(10))
    assert b.voxels.shape == (10, 1, 4)
    # Without detrending, the drift shared by both repeats makes noise voxels look reliable.
    assert load_cc2017_subject(root, 1, n_keep=N_KEEP, detrend_order=None).n_voxels > 4


def test_mask_file_selection_and_existing_mask(raw, tmp_path):
    root, _, _ = raw
    idx = np.array([2, 5, 13])
    np.save(tmp_path / "idx.npy", idx)
    bools = np.zeros(N_CORTEX, bool)
    bools[[1, 6]] = True
    np.save(tmp_path / "bool.npy", bools)
    by_idx = load_cc2017_subject(root, 1, n_keep=N_KEEP, selection=VoxelSelection(method="mask", mask_path=tmp_path / "idx.npy"))
    assert np.flatnonzero(by_idx.mask).tolist() == [2, 5, 13] and by_idx.n_voxels == 3
    assert by_idx.reliability.shape == (3,)
    by_bool = load_cc2017_subject(root, 1, n_keep=N_KEEP, selection=VoxelSelection(method="mask", mask_path=tmp_path / "bool.npy"))
    assert np.flatnonzero(by_bool.mask).tolist() == [1, 6]
    # The store's mask wins over a recomputed reliability selection...
    same = load_cc2017_subject(root, 1, n_keep=N_KEEP, existing_mask=by_idx.mask)
    assert same.mask_hash == by_idx.mask_hash
    # ...but an explicit, different mask is refused, naming both hashes.
    with pytest.raises(CNError) as err:
        load_cc2017_subject(root, 1, n_keep=N_KEEP, selection=VoxelSelection(method="mask", mask_path=tmp_path / "bool.npy"),
                            existing_mask=by_idx.mask)
    assert by_idx.mask_hash in str(err.value) and by_bool.mask_hash in str(err.value)
    np.save(tmp_path / "bad.npy", np.array([0, 99]))
    with pytest.raises(CNError, match="indices"):
        load_cc2017_subject(root, 1, n_keep=N_KEEP, selection=VoxelSelection(method="mask", mask_path=tmp_path / "bad.npy"))


def test_nan_raises_naming_run(tmp_path):
    write_cc2017_raw(tmp_path, n_keep=N_KEEP, n_segments=2, n_tests=1, n_test_repeats=2, nan_at=("seg2", 1, 4, 6))
    with pytest.raises(CNError, match="seg2 repeat 2"):
        load_cc2017_subject(tmp_path, 1, n_keep=N_KEEP, selection=ALL)


def test_short_run_and_missing_subject(tmp_path):
    write_cc2017_raw(tmp_path, n_keep=N_KEEP, n_segments=2, n_tests=1, n_test_repeats=2)
    with pytest.raises(CNError, match="volumes"):
        load_cc2017_subject(tmp_path, 1, n_keep=N_KEEP + 1, selection=ALL)
    with pytest.raises(CNError, match="subject2"):
        load_cc2017_subject(tmp_path, 2)


# --- official .mat files ----------------------------------------------------------------------


@pytest.mark.parametrize(("train_format", "test_format", "in_fmri_dir"), [("v5", "v73", True), ("v73", "v5", False)])
def test_mat_forms(tmp_path, train_format, test_format, in_fmri_dir):
    truth = write_cc2017_mat(tmp_path, train_format=train_format, test_format=test_format, in_fmri_dir=in_fmri_dir)
    where = tmp_path / "subject1" / ("fmri" if in_fmri_dir else "")
    assert is_hdf5(where / "training_fmri.mat") == (train_format == "v73")
    assert is_hdf5(where / "testing_fmri.mat") == (test_format == "v73")
    data = load_cc2017_subject(tmp_path, 1, selection=ALL)
    assert data.qc["form"] == "mat" and data.n_voxels == truth.n_vox
    n_clips = truth.n_vol - truth.lag_tr
    assert data.n_samples == {"train": truth.n_segments * 2 * n_clips, "test": truth.n_tests * n_clips}
    s = samples(data)
    seg, rep, t, v = truth.train_spike
    name = f"seg{seg + 1}"
    assert s[sid(name, t, rep)][2][0, v] > 3.0
    assert abs(s[sid(name, t + 1, rep)][2][0, v]) < 2.0 and abs(s[sid(name, t, 1 - rep)][2][0, v]) < 2.0
    k, tt, tv = truth.test_spike
    tname = f"test{k + 1}"
    assert s[sid(tname, tt, -1)][2][0, tv] > 3.0 and abs(s[sid(tname, tt - 1, -1)][2][0, tv]) < 2.0
    # Average of per-repeat z-scores of the file's data: axis order checked against MATLAB order.
    raw = truth.test_data[tname]  # (n_vox, n_vol, n_rep)
    z = (raw - raw.mean(1, keepdims=True)) / raw.std(1, keepdims=True, ddof=1)  # N-1, as MATLAB
    assert np.allclose(s[sid(tname, 0, -1)][2][0], z[:, truth.lag_tr, :].mean(-1), atol=1e-5)
    rel = load_cc2017_subject(tmp_path, 1)
    assert np.flatnonzero(rel.mask).tolist() == truth.reliable


def test_leading_volumes_dropped_follow_the_run_length_not_its_name(tmp_path):
    from fmri_fixtures import write_cifti

    write_cc2017_raw(tmp_path, n_keep=N_KEEP, n_tests=1)
    path = tmp_path / "subject1" / "fmri" / "test1" / "cifti" / "test1_1_Atlas.dtseries.nii"
    full = np.random.default_rng(4).normal(size=(2 + N_KEEP + 4, N_CORTEX + 9))  # test1 with 2 leading
    full[:, :N_CORTEX] += np.arange(2 + N_KEEP + 4)[:, None] % 7 * 10.0  # volume number visible in the data
    write_cifti(path, full)
    from cineneuron.fmri.cc2017_fmri import _raw_loader
    from cineneuron.schemas.datasets import CC2017Config

    cfg = CC2017Config(n_keep=N_KEEP, detrend_order=None)
    kept = _raw_loader(path, "test1", cfg, [])()
    assert np.allclose(kept, full[2:2 + N_KEEP, :N_CORTEX], atol=1e-4)  # 2 dropped: it has 246-style length
    write_cifti(path, np.concatenate([full, full[:1]]))  # one volume more than either length
    with pytest.raises(CNError) as e:
        load_cc2017_subject(tmp_path, 1, n_keep=N_KEEP, selection=ALL)
    msg = str(e.value)
    assert "\n" not in msg and "test1_1_Atlas.dtseries.nii has 30 volumes" in msg and "28 or 29" in msg


def test_low_voxel_survival_is_a_qc_warning(raw):
    root, truth, _ = raw
    data = load_cc2017_subject(root, 1, n_keep=N_KEEP)  # reliability selection, the paper's default
    warn = [w for w in data.qc["warnings"] if w.startswith("only ")]
    assert len(warn) == 1 and f"only {data.n_voxels} of " in warn[0] and "bonferroni" in warn[0]
    assert f"warning: {warn[0]}" in format_qc(data.qc)
