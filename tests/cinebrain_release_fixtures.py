"""Tiny CineBrain datasets in the release's exact layouts (cifit2npy.py, CineSync data_video.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmri_fixtures import N_LEFT, N_RIGHT, N_SUB, write_cifti

N_GRAY = N_LEFT + N_RIGHT + N_SUB  # grayordinates of the toy dtseries (91,282 in the release)
ROI_VISUAL = np.zeros(N_GRAY, bool)
ROI_VISUAL[[1, 2, 4, 7, 8, 11, 13, 15, 16, 20]] = True  # 10 "visual" grayordinates
TR = 0.8
RAW_RUNS = {1: (0.0, 8.0, 30), 2: (3.2, 11.2, 30), 3: (12.0, 16.0, 32)}  # run: (videoStartTime, videoStopTime, volumes)
TEST_IDS = (7560, 7561)
AUTHOR = "/ssd/gaojianxiong/CineBrain"  # the lists hold the authors' absolute paths


@dataclass
class Release:
    root: Path
    sdir: Path
    stream: np.ndarray  # (n_tr, V) what visual_audio/{t}.npy hold
    clips: dict = field(default_factory=dict)  # video -> (TRs, split, text)
    spike: tuple = ()  # (video, voxel column)


def write_lists(root: Path, subject_name: str, clips: dict, *, inside: bool = False) -> None:
    """sub_0001_{train,test}_va.json: CineSync items with the authors' absolute paths."""
    for split in ("train", "test"):
        items = [{"fmri": [f"{AUTHOR}/{subject_name}/visual_audio/{t}.npy" for t in trs],
                  "eeg": [f"{AUTHOR}/{subject_name}/eeg_02/{t}.npy" for t in trs],
                  "text": text, "video": f"./dataset/{video}"}
                 for video, (trs, s, text) in clips.items() if s == split]
        where = (root / subject_name) if inside else root
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{subject_name}_{split}_va.json").write_text(json.dumps(items))


def release_clips(n_train: int = 6) -> dict:
    clips = {f"video_annos/clips/{i:06d}.mp4": (list(range(5 * i, 5 * i + 5)), "train", f"scene {i}. two men talk.")
             for i in range(n_train)}
    for k, i in enumerate(TEST_IDS):
        t0 = 5 * (n_train + k)
        clips[f"video_annos/clips/{i:06d}.mp4"] = (list(range(t0, t0 + 5)), "test", f"test scene {i}.")
    return clips


def write_preprocessed(root: Path, subject_dir: str = "sub_0001", *, seed: int = 0, stream=None,
                       lists: bool = True, roi_file: bool = True) -> Release:
    """ROOT/sub_0001/visual_audio/{t}.npy (+ roi_var_visual.npy) and ROOT/sub_0001_{split}_va.json."""
    rng = np.random.default_rng(seed)
    clips = release_clips()
    n = 5 * len(clips)
    if stream is None:
        stream = rng.normal(size=(n, int(ROI_VISUAL.sum()))).astype(np.float32)  # already z-scored
        stream[10:15, 3] += 8.0  # clip 2 lights voxel 3
    sdir = root / subject_dir
    (sdir / "visual_audio").mkdir(parents=True, exist_ok=True)
    for t, vol in enumerate(stream):
        np.save(sdir / "visual_audio" / f"{t}.npy", vol)
    if roi_file:
        np.save(sdir / "roi_var_visual.npy", ROI_VISUAL)
    if lists:
        write_lists(root, subject_dir, clips)
    return Release(root, sdir, stream, clips, ("video_annos/clips/000002.mp4", 3))


def write_raw(root: Path, subject_dir: str = "sub_0001", *, seed: int = 1, runs: dict = RAW_RUNS) -> Release:
    """ROOT/sub_0001/dtseries/sub-0001_task-shape_run-{r}_space-fsLR_den-91k_bold.dtseries.nii,
    ROOT/sub_0001/beh_data/sub_0001_{r}.csv (videoStartTime, videoStopTime) and ROOT/roi_var_visual.npy."""
    rng = np.random.default_rng(seed)
    sdir = root / subject_dir
    (sdir / "beh_data").mkdir(parents=True, exist_ok=True)
    for r, (start, stop, n_vol) in runs.items():
        data = 100.0 + rng.normal(scale=3.0, size=(n_vol, N_GRAY)) + rng.normal(scale=20.0, size=N_GRAY)
        data[:, 4] = 55.0  # a constant visual grayordinate: 0/0 -> 0, as the official script does
        write_cifti(sdir / "dtseries" / f"sub-0001_task-shape_run-{r}_space-fsLR_den-91k_bold.dtseries.nii", data, tr=TR)
        (sdir / "beh_data" / f"sub_0001_{r}.csv").write_text(
            "trial,videoStartTime,videoStopTime,video\n"
            f"1,{start},{stop},s01e0{r}.mp4\n")
    np.save(root / "roi_var_visual.npy", ROI_VISUAL)
    return Release(root, sdir, np.zeros((0, 0)))
