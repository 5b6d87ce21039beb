"""Write tiny cc2017 and CineBrain datasets in their real file formats, with planted signals.

Dimensions are deliberately unequal (7 left-cortex, 8 right-cortex and 9 subcortical
grayordinates; runs of odd lengths) so that any axis mix-up fails a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

N_LEFT, N_RIGHT, N_SUB = 7, 8, 9
N_CORTEX = N_LEFT + N_RIGHT
SPIKE = 40.0  # planted response, in units of the noise sd


def trim_of(name: str) -> tuple[int, int]:
    """cc2017's (first, last) volumes dropped per run type."""
    return (1, 4) if name.startswith("seg") or name == "test1" else (2, 4)


@dataclass
class CC2017Truth:
    """What a cc2017 fixture planted. Voxel indices are cortical (0..14); t is the clip TR."""

    n_keep: int
    segments: list[str]
    tests: list[str]
    n_test_repeats: int
    lag_tr: int
    reliable: list[int]
    train_spike: tuple[str, int, int, int]  # (segment, repeat 0-based, clip t, voxel)
    test_spike: tuple[str, int, int]  # (test run, clip t, voxel), in every repeat
    constant_voxel: int | None = None
    nan_at: tuple[str, int, int, int] | None = None  # (run, repeat, trimmed volume, voxel)
    files: list[Path] = field(default_factory=list)


def _cc2017_run(rng, truth: CC2017Truth, name: str, rep: int, n_vox: int, signals: dict) -> np.ndarray:
    """One run's (n_vol, n_vox) cortical data after trimming: noise, shared signal, spikes."""
    n = truth.n_keep
    data = rng.normal(size=(n, n_vox))  # (n_keep, n_vox)
    sig = signals.setdefault(name, rng.normal(size=n))  # the same in every repeat of the run
    data[:, truth.reliable] += 4.0 * sig[:, None]
    seg, srep, t, v = truth.train_spike
    if (name, rep) == (seg, srep):
        data[t + truth.lag_tr, v] += SPIKE
    tname, tt, tv = truth.test_spike
    if name == tname:
        data[tt + truth.lag_tr, tv] += SPIKE
    if truth.constant_voxel is not None:
        data[:, truth.constant_voxel] = 5.0
    return data


def _drift(rng, n_raw: int, n_vox: int, coef: np.ndarray) -> np.ndarray:
    """A 4th-order polynomial drift per voxel, large next to the signal. coef: (5, n_vox)."""
    x = np.linspace(-1, 1, n_raw)
    return np.polynomial.polynomial.polyvander(x, 4) @ coef  # (n_raw, n_vox)


def write_cifti(path: Path, data: np.ndarray, tr: float = 2.0) -> None:
    """A dtseries with L/R cortex surface models and a subcortical volume model. data: (n_vol, 24)."""
    import nibabel as nib
    from nibabel import cifti2

    left = cifti2.BrainModelAxis.from_surface(np.arange(N_LEFT) * 3, 32, name="CIFTI_STRUCTURE_CORTEX_LEFT")
    right = cifti2.BrainModelAxis.from_surface(np.arange(N_RIGHT) * 2, 40, name="CIFTI_STRUCTURE_CORTEX_RIGHT")
    vol = np.zeros((3, 4, 5), dtype=bool)
    vol.flat[np.arange(N_SUB) * 6] = True
    sub = cifti2.BrainModelAxis.from_mask(vol, name="CIFTI_STRUCTURE_THALAMUS_LEFT", affine=np.eye(4))
    series = cifti2.SeriesAxis(start=0.0, step=tr, size=data.shape[0], unit="SECOND")
    img = cifti2.Cifti2Image(data.astype(np.float32), header=(series, left + right + sub))
    img.nifti_header.set_intent("ConnDenseSeries")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def write_cc2017_raw(
    root: Path,
    subject: int = 1,
    *,
    n_keep: int = 23,
    n_segments: int = 4,
    n_tests: int = 2,
    n_test_repeats: int = 3,
    constant_voxel: int | None = 14,
    nan_at: tuple[str, int, int, int] | None = None,
    seed: int = 0,
) -> CC2017Truth:
    """ROOT/subject{k}/fmri/{seg,test}{n}/cifti/{name}_{r}_Atlas.dtseries.nii, raw and untrimmed.

    Each run gets its type's extra volumes before and after (seg/test1: 1 + 4, test2..: 2 + 4),
    a per-voxel polynomial drift (the same in both repeats, so only detrending keeps noise voxels
    unreliable), subcortical junk that must never be read, and the planted spikes.
    """
    rng = np.random.default_rng(seed)
    truth = CC2017Truth(
        n_keep=n_keep, segments=[f"seg{i + 1}" for i in range(n_segments)], tests=[f"test{i + 1}" for i in range(n_tests)],
        n_test_repeats=n_test_repeats, lag_tr=2, reliable=[0, 3, 9, 12],
        train_spike=("seg2", 1, 5, 8), test_spike=(f"test{n_tests}", 7, 2),
        constant_voxel=constant_voxel, nan_at=nan_at,
    )
    coef = rng.normal(scale=30.0, size=(5, N_CORTEX))
    coef[0] += 1000.0  # a scanner-like baseline
    signals: dict = {}
    runs = [(s, 2) for s in truth.segments] + [(t, n_test_repeats) for t in truth.tests]
    for name, n_rep in runs:
        head, tail = trim_of(name)
        n_raw = head + n_keep + tail
        for rep in range(n_rep):
            cortex = _cc2017_run(rng, truth, name, rep, N_CORTEX, signals)
            full = rng.normal(size=(n_raw, N_CORTEX)) * 50.0  # junk in the dropped volumes
            full[head : head + n_keep] = cortex
            full += _drift(rng, n_raw, N_CORTEX, coef)
            if constant_voxel is not None:
                full[:, constant_voxel] = 5.0
            if nan_at is not None and (name, rep) == nan_at[:2]:
                full[head + nan_at[2], nan_at[3]] = np.nan
            sub = rng.normal(size=(n_raw, N_SUB)) + 1e4  # subcortex: huge, must be excluded
            path = root / f"subject{subject}" / "fmri" / name / "cifti" / f"{name}_{rep + 1}_Atlas.dtseries.nii"
            write_cifti(path, np.concatenate([full, sub], axis=1))
            truth.files.append(path)
    return truth


# --- .mat -------------------------------------------------------------------------------------

_MAT73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def write_mat_v5(path: Path, struct: str, fields: dict[str, np.ndarray]) -> None:
    """A MATLAB v5 file with one struct whose fields are the given arrays (MATLAB order)."""
    from scipy.io import savemat

    savemat(path, {struct: fields}, format="5")


def write_mat_v73(path: Path, struct: str, fields: dict[str, np.ndarray]) -> None:
    """A MATLAB v7.3 file: HDF5 behind a 512-byte MATLAB header, arrays stored with axes reversed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as fh:
        grp = fh.create_group(struct)
        grp.attrs["MATLAB_class"] = np.bytes_("struct")
        for name, arr in fields.items():
            ds = grp.create_dataset(name, data=np.ascontiguousarray(arr.T))  # h5py sees reversed axes
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    header = _MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)


@dataclass
class MatTruth:
    n_vox: int
    n_vol: int
    n_segments: int
    n_tests: int
    n_test_repeats: int
    lag_tr: int
    reliable: list[int]
    train_spike: tuple[int, int, int, int]  # (segment index, repeat 0/1, clip t, voxel)
    test_spike: tuple[int, int, int]  # (test index, clip t, voxel)
    test_data: dict[str, np.ndarray] = field(default_factory=dict)  # MATLAB order


def write_cc2017_mat(
    root: Path,
    subject: int = 1,
    *,
    n_vox: int = 15,
    n_vol: int = 21,
    n_segments: int = 4,
    n_tests: int = 2,
    n_test_repeats: int = 3,
    train_format: str = "v5",
    test_format: str = "v73",
    in_fmri_dir: bool = True,
    seed: int = 1,
) -> MatTruth:
    """training_fmri.mat (fmri.data1/data2: n_vox × n_vol × n_seg) and testing_fmri.mat
    (fmritest.test{m}: n_vox × n_vol × n_rep), each as v5 or v7.3."""
    rng = np.random.default_rng(seed)
    truth = MatTruth(n_vox, n_vol, n_segments, n_tests, n_test_repeats, lag_tr=2, reliable=[1, 4, 11],
                     train_spike=(2, 1, 6, 10), test_spike=(n_tests - 1, 3, 13))
    shared = rng.normal(size=(n_vol, n_segments))  # per-segment signal
    reps = []
    for rep in range(2):
        data = rng.normal(size=(n_vox, n_vol, n_segments))
        data[truth.reliable] += 4.0 * shared[None]
        reps.append(data)
    s, r, t, v = truth.train_spike
    reps[r][v, t + truth.lag_tr, s] += SPIKE
    k, tt, tv = truth.test_spike
    for m in range(n_tests):
        data = rng.normal(size=(n_vox, n_vol, n_test_repeats))
        if m == k:
            data[tv, tt + truth.lag_tr, :] += SPIKE
        truth.test_data[f"test{m + 1}"] = data
    where = root / f"subject{subject}" / ("fmri" if in_fmri_dir else "")
    where.mkdir(parents=True, exist_ok=True)
    writers = {"v5": write_mat_v5, "v73": write_mat_v73}
    writers[train_format](where / "training_fmri.mat", "fmri", {"data1": reps[0], "data2": reps[1]})
    writers[test_format](where / "testing_fmri.mat", "fmritest", truth.test_data)
    return truth


# --- CineBrain --------------------------------------------------------------------------------

CB_N_SOURCE = 40
CB_ROIS = {
    "visual": [22, 3, 30, 8, 13, 5, 21],  # unsorted on purpose: columns follow the source order
    "hippocampus": [1, 17, 25, 33, 38],
    "mpfc": [10, 11, 36],
}
CB_RUNS = {"run-01": 61, "run-02": 53}  # TRs per run
CB_BEHAVIOUR = {
    # video, start_s, stop_s, video_offset_s, split
    "run-01": [("videos/ep01.mp4", 2.4, 24.4, 0.0, "train"), ("videos/ep02.mp4", 26.0, 44.0, 0.0, "train")],
    "run-02": [("videos/ep02.mp4", 1.6, 41.6, 16.0, "test")],
}


@dataclass
class CineBrainTruth:
    tr: float
    # (run, video, clip index within the row, source voxel): a spike over the clip's 5 response TRs
    spikes: list[tuple[str, str, int, int]]
    constant_voxel: int
    responses: dict  # (run, video, clip index) -> first response TR


def write_cinebrain(root: Path, subject: int = 1, *, seed: int = 2, nan_at: tuple[str, int, int] | None = None) -> CineBrainTruth:
    """ROOT/sub-{k:02d}/{fmri/{run}/{i:05d}.npy, behavior/{run}.csv, roi/{name}.npy}."""
    rng = np.random.default_rng(seed)
    sdir = root / f"sub-{subject:02d}"
    tr = 0.8
    truth = CineBrainTruth(tr=tr, spikes=[("run-01", "videos/ep01.mp4", 2, 13), ("run-02", "videos/ep02.mp4", 4, 17)],
                           constant_voxel=30, responses={})
    for run, rows in CB_BEHAVIOUR.items():
        for video, start, stop, _, _ in rows:
            for i in range(int((stop - start) // 4.0 + 1e-6)):
                truth.responses[(run, video, i)] = int(np.ceil((start + 4.0 * i + 4.0) / tr - 1e-6))
    for run, n_tr in CB_RUNS.items():
        data = rng.normal(size=(n_tr, CB_N_SOURCE)) + rng.normal(scale=5.0, size=CB_N_SOURCE)  # (n_tr, n_source)
        for srun, video, i, vox in truth.spikes:
            if srun == run:
                r0 = truth.responses[(run, video, i)]
                data[r0 : r0 + 5, vox] += SPIKE
        data[:, truth.constant_voxel] = 7.0
        if nan_at is not None and nan_at[0] == run:
            data[nan_at[1], nan_at[2]] = np.nan
        rdir = sdir / "fmri" / run
        rdir.mkdir(parents=True, exist_ok=True)
        for i, vol in enumerate(data):
            np.save(rdir / f"{i:05d}.npy", vol.astype(np.float32))
        bdir = sdir / "behavior"
        bdir.mkdir(parents=True, exist_ok=True)
        lines = ["video,start_s,stop_s,video_offset_s,split"]
        lines += [f"{v},{a},{b},{o},{s}" for v, a, b, o, s in CB_BEHAVIOUR[run]]
        (bdir / f"{run}.csv").write_text("\n".join(lines) + "\n")
    (sdir / "roi").mkdir(parents=True, exist_ok=True)
    for name, idx in CB_ROIS.items():
        np.save(sdir / "roi" / f"{name}.npy", np.array(idx, dtype=np.int64))
    return truth
