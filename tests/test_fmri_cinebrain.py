"""CineBrain ingestion on a tiny dataset in the layout of cineneuron.fmri.cinebrain_fmri."""

from __future__ import annotations

import numpy as np
import pytest
from fmri_fixtures import CB_BEHAVIOUR, CB_N_SOURCE, CB_ROIS, CB_RUNS, write_cinebrain

from cineneuron.errors import CNError
from cineneuron.fmri import load_cinebrain_subject
from cineneuron.schemas.records import clip_id

VIS_HIP = sorted(CB_ROIS["visual"] + CB_ROIS["hippocampus"])


@pytest.fixture(scope="module")
def cb(tmp_path_factory):
    root = tmp_path_factory.mktemp("cinebrain")
    truth = write_cinebrain(root)
    data = load_cinebrain_subject(root, 1, rois=("visual", "hippocampus"))
    return root, truth, data


def by_clip(data) -> dict[str, tuple]:
    """clip_id -> (sample_id, split, tr_index, voxels (5, V))."""
    out = {}
    for b in data.batches(batch_size=4):
        for i, c in enumerate(b.clip_id):
            out[c] = (b.sample_id[i], b.split[i], int(b.tr_index[i]), b.voxels[i])
    return out


def cid(video, start):
    return clip_id("cinebrain", video, start, start + 4.0)


def test_rois_choose_voxels(cb):
    root, _, data = cb
    assert np.flatnonzero(data.mask).tolist() == VIS_HIP and data.mask.size == CB_N_SOURCE
    assert data.n_voxels == 12 and data.qc["roi_counts"] == {"visual": 7, "hippocampus": 5}
    assert load_cinebrain_subject(root, 1).n_voxels == 7
    assert load_cinebrain_subject(root, 1, rois="visual+hippocampus+mpfc").n_voxels == 15
    with pytest.raises(CNError, match="ROI"):
        load_cinebrain_subject(root, 1, rois=("visual", "amygdala"))


def test_planted_response_at_clip_after_shift(cb):
    _, truth, data = cb
    s = by_clip(data)
    run, video, i, vox = truth.spikes[0]
    col = VIS_HIP.index(vox)
    sample_id, split, t, vox_data = s[cid(video, 4.0 * i)]
    assert vox_data.shape == (5, 12) and split == "train"
    assert (vox_data[:, col] > 2.0).all()
    for j in (i - 1, i + 1):
        assert (np.abs(s[cid(video, 4.0 * j)][3][:, col]) < 2.0).all()
    # Onset TR of the clip (not shifted) names the sample; the response starts 4 s later.
    start = CB_BEHAVIOUR[run][0][1] + 4.0 * i
    assert t == int(np.ceil(start / 0.8 - 1e-6))
    assert sample_id == f"cinebrain-sub1-{run}-t{t:03d}-r0"
    # The hippocampus spike of the test run, at video time offset + 4 i.
    run, video, i, vox = truth.spikes[1]
    off = CB_BEHAVIOUR[run][0][3]
    hit = s[cid(video, off + 4.0 * i)]
    assert hit[1] == "test" and (hit[3][:, VIS_HIP.index(vox)] > 2.0).all()
    assert (np.abs(s[cid(video, off + 4.0 * (i + 1))][3][:, VIS_HIP.index(vox)]) < 2.0).all()


def test_clips_never_run_past_run_end(cb):
    _, truth, data = cb
    expected = [k for k, r0 in truth.responses.items() if r0 + 5 <= CB_RUNS[k[0]]]
    assert len(expected) < len(truth.responses)  # the fixture has a clip whose response is cut off
    assert sum(data.n_samples.values()) == len(expected)
    assert data.n_samples == {"train": 9, "test": 9}
    for run in data.runs:
        assert run.response_start.max() + 5 <= run.data.shape[0]
    s = by_clip(data)
    assert cid("videos/ep02.mp4", 16.0 + 4.0 * 9) not in s  # run-02's 10th clip is cut off
    assert cid("videos/ep01.mp4", 20.0) not in s  # ep01 stops 2 s into its 6th clip


def test_zscore_over_all_runs_constant_is_zero(cb):
    _, truth, data = cb
    arrays = {id(r.data): r.data for r in data.runs}.values()  # runs of one file share its array
    allv = np.concatenate(list(arrays))  # (sum n_tr, V)
    assert allv.shape == (sum(CB_RUNS.values()), 12)
    col = VIS_HIP.index(truth.constant_voxel)
    keep = [c for c in range(12) if c != col]
    assert np.allclose(allv[:, keep].mean(0), 0, atol=1e-5) and np.allclose(allv[:, keep].std(0), 1, atol=1e-4)
    assert (allv[:, col] == 0).all() and data.qc["n_constant"] == 1


def test_existing_mask_and_nan(cb, tmp_path):
    root, _, data = cb
    same = load_cinebrain_subject(root, 1, rois="visual+hippocampus", existing_mask=data.mask)
    assert same.mask_hash == data.mask_hash
    with pytest.raises(CNError) as err:
        load_cinebrain_subject(root, 1, rois=("visual",), existing_mask=data.mask)
    assert data.mask_hash in str(err.value)
    write_cinebrain(tmp_path, nan_at=("run-02", 10, CB_ROIS["visual"][0]))
    with pytest.raises(CNError, match="run-02"):
        load_cinebrain_subject(tmp_path, 1)
