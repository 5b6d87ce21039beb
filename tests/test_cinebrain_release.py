"""CineBrain in its released layouts: the preprocessed volumes + CineSync lists, and the raw
dtseries + behaviour CSVs, in both subject-folder spellings (sub_0001, sub-01)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from cinebrain_release_fixtures import ROI_VISUAL, TR, write_preprocessed, write_raw
from test_sources import write_video

from cineneuron.errors import CNError
from cineneuron.fmri import load_cinebrain_subject
from cineneuron.fmri.cinebrain_release import official_first_tr
from cineneuron.schemas.records import clip_id
from cineneuron.sources import open_source


def samples(data) -> dict:
    """clip_id -> (split, first TR, voxels (n_tr, V))."""
    out = {}
    for b in data.batches(batch_size=3):
        for i, c in enumerate(b.clip_id):
            out[c] = (b.split[i], int(b.tr_index[i]), b.voxels[i])
    return out


def test_response_tr_rule_is_the_official_scripts():
    assert [official_first_tr(t) for t in (0.0, 3.2, 12.0)] == [6, 10, 21]  # int((t + 4) / 0.8) + 1
    assert official_first_tr(0.5) == 6 and int(np.ceil((0.5 + 4) / 0.8)) == 6  # where ceil agrees ...
    assert official_first_tr(0.0) != int(np.ceil((0.0 + 4) / 0.8))  # ... and where it does not


@pytest.mark.parametrize("spelling", ["sub_0001", "sub-01"])
def test_preprocessed_release_is_read_as_is(tmp_path, spelling):
    rel = write_preprocessed(tmp_path, spelling)
    data = load_cinebrain_subject(tmp_path, 1)
    assert data.qc["preprocessing"]["path"] == "preprocessed"
    assert "CineSync lists" in data.qc["preprocessing"]["pairing"]
    assert data.n_tr == 5 and data.n_samples == {"train": 6, "test": 2}
    assert np.array_equal(data.mask, ROI_VISUAL) and data.n_voxels == 10
    s = samples(data)
    for video, (trs, split, _) in rel.clips.items():
        got_split, t0, vox = s[clip_id("cinebrain", video, 0.0, 4.0)]
        assert got_split == split and t0 == trs[0]
        assert np.array_equal(vox, rel.stream[trs[0]:trs[0] + 5])  # no second z-score, no second shift
    video, col = rel.spike
    assert (s[clip_id("cinebrain", video, 0.0, 4.0)][2][:, col] > 4).all()
    assert s[clip_id("cinebrain", "video_annos/clips/007561.mp4", 0.0, 4.0)][0] == "test"


def _official(root, spelling="sub_0001"):
    """cifit2npy.py's steps, restated on the fixture: slice, concatenate, z-score (N-1), mask."""
    import nibabel as nib

    from cinebrain_release_fixtures import RAW_RUNS

    parts = []
    for r, (start, stop, _) in RAW_RUNS.items():
        d = nib.load(str(root / spelling / "dtseries" / f"sub-0001_task-shape_run-{r}_space-fsLR_den-91k_bold.dtseries.nii")).get_fdata()
        parts.append(d[int((start + 4) / TR) + 1:int((stop + 4) / TR) + 1])
    x = np.concatenate(parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - x.mean(0)) / x.std(0, ddof=1)
    z[np.isnan(z)] = 0
    return z[:, ROI_VISUAL]


@pytest.mark.parametrize("spelling", ["sub_0001", "sub-01"])
def test_raw_release_follows_the_official_preprocessing(tmp_path, spelling):
    write_raw(tmp_path, spelling)
    data = load_cinebrain_subject(tmp_path, 1)
    pre = data.qc["preprocessing"]
    assert pre["path"] == "raw" and pre["roi_file"] == "roi_var_visual.npy" and "assumed" in pre["pairing"]
    # first TRs 6, 10, 21; run 2 ends at int(15.2 / 0.8) + 1 = 19 in floating point, as upstream
    assert data.qc["volumes_kept"] == {"1": [6, 16], "2": [10, 19], "3": [21, 26]}
    stream = data.runs[0].data
    ref = _official(tmp_path, spelling)
    assert stream.shape == ref.shape == (24, 10)
    assert np.allclose(stream, ref, atol=1e-5)
    assert (stream[:, 2] == 0).all() and data.qc["n_constant"] == 1  # grayordinate 4 is constant
    assert data.n_samples == {"train": 4}  # 24 TRs, no lists: clips 0..3 of 5 TRs

    # The same volumes as a preprocessed release give the same samples: nothing is done twice.
    pre_root = tmp_path / "pre"
    write_preprocessed(pre_root, "sub_0001", stream=stream, lists=False)
    again = load_cinebrain_subject(pre_root, 1)
    assert again.qc["preprocessing"]["path"] == "preprocessed"
    a, b = samples(data), samples(again)
    assert a.keys() == b.keys() and all(np.array_equal(a[k][2], b[k][2]) for k in a)


def test_raw_refusals_are_one_line(tmp_path):
    write_raw(tmp_path)
    (tmp_path / "roi_var_visual.npy").unlink()
    with pytest.raises(CNError, match="roi_var_visual.npy"):
        load_cinebrain_subject(tmp_path, 1)
    short = tmp_path / "short"
    write_raw(short, runs={1: (0.0, 30.0, 30)})  # the video ends past the run's last volume
    with pytest.raises(CNError, match="run 1: the video ends at volume 43"):
        load_cinebrain_subject(short, 1)


def test_neither_layout_names_the_files_it_looked_for(tmp_path):
    (tmp_path / "sub_0001" / "something").mkdir(parents=True)
    with pytest.raises(CNError) as e:
        load_cinebrain_subject(tmp_path, 1)
    msg = str(e.value)
    assert "\n" not in msg and "sub_0001/visual_audio/{t}.npy" in msg
    assert "sub-0001_task-shape_run-{r}_space-fsLR_den-91k_bold.dtseries.nii" in msg and "beh_data/sub_0001_{r}.csv" in msg


def test_release_clips_match_the_fmri_ids_captions_and_splits(tmp_path):
    rel = write_preprocessed(tmp_path)
    for i, video in enumerate(rel.clips):
        write_video(tmp_path / video, 4.125, fps=8, seed=i)  # 33 frames at 8 fps
    clips = list(open_source("cinebrain", tmp_path).clips())
    assert [c.video for c in clips] == list(rel.clips)
    assert {c.clip_id for c in clips} == set(samples(load_cinebrain_subject(tmp_path, 1)))
    by = {c.video: c for c in clips}
    assert by["video_annos/clips/000002.mp4"].caption == "scene 2. two men talk."
    assert [by[v].split for v in rel.clips] == [s for _, s, _ in rel.clips.values()]
    assert all((c.start_s, c.end_s) == (0.0, 4.0) for c in clips)


@pytest.mark.slow  # two CLI start-ups and an encode of 8 clips: ~30-50 s on the shared 2 cores
def test_cli_ingests_the_preprocessed_release_and_records_the_path(tmp_path):
    import json
    import subprocess
    import sys

    root = tmp_path / "CineBrain"
    rel = write_preprocessed(root)
    for i, video in enumerate(rel.clips):
        write_video(root / video, 4.125, fps=8, seed=i)
    store = tmp_path / "store"
    cn = [sys.executable, "-m", "cineneuron.cli"]
    run = lambda *a: subprocess.run([*cn, *map(str, a)], capture_output=True, text=True, timeout=300)  # noqa: E731
    assert run("init", "--store", store).returncode == 0
    r = run("ingest", "cinebrain", "--root", root, "--subject", "1", "--store", store, "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "8 samples (test 2, train 6)" in r.stdout and "not yet in the store" not in r.stdout
    jobs = json.loads(run("pool", "jobs", "--json", "--store", store).stdout)
    fmri_job = [j for j in jobs if j["kind"] == "fmri"][0]
    assert fmri_job["notes"]["preprocessing"]["path"] == "preprocessed"
    stats = json.loads(run("pool", "stats", "--json", "--store", store).stdout)
    assert stats["fmri"]["cinebrain/1"]["by_split"] == {"test": 2, "train": 6}  # per split, per subject
    assert stats["fmri"]["cinebrain/1"]["samples"] == 8
    bad = run("ingest", "cinebrain", "--root", tmp_path / "nothing", "--subject", "1", "--store", store, "--quiet")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
