"""cc2017 (Wen et al. 2017) fMRI: read a subject, preprocess, select voxels, align to 2 s clips.

Layouts read (ROOT is the dataset root; k the subject number; the simulator writes the same):

Raw (form "raw"), CIFTI-2 dense time series, time × grayordinates, 2 s TR:
    ROOT/subject{k}/fmri/seg{n}/cifti/seg{n}_{1,2}_Atlas.dtseries.nii        training, 2 repeats
    ROOT/subject{k}/fmri/test{n}/cifti/test{n}_{1..R}_Atlas.dtseries.nii     test, R repeats (10)
  Cortex = the CORTEX_LEFT + CORTEX_RIGHT models of the brain-model axis (59,412 in the real
  data); subcortical models are ignored. Each run is trimmed to n_keep volumes (240): the last
  4 are dropped and the first 1 or 2, decided by the run's length as the official code does
  (245 volumes: 1, 246: 2; any other length is refused), then detrended (Legendre polynomial,
  order detrend_order) and z-scored per voxel (N-1, as MATLAB's zscore).

Official preprocessed (form "mat"), in ROOT/subject{k}/fmri/ or ROOT/subject{k}/:
    training_fmri.mat   struct fmri, fields data1 (repeat 0), data2 (repeat 1),
                        each (n_voxels, n_volumes, n_segments) in MATLAB order
    testing_fmri.mat    struct fmritest, fields test1..testM, each (n_voxels, n_volumes, n_repeats)
  Either file may be MATLAB v5 (scipy.io) or v7.3 (HDF5, h5py; axes appear reversed there); the
  version is detected from the content. These data are already trimmed and detrended by the
  dataset's authors, so they are only z-scored per run (idempotent on their z-scores).

Form "auto" takes the .mat files when training_fmri.mat exists, else the raw CIFTI files.

Alignment: the clip of TR t of segK is clip_id(source, "stimuli/segK.mp4", t·tr, t·tr + tr)
(test: "stimuli/testK.mp4"); it pairs with response volumes [t + lag, t + lag + n_tr) of its run,
and clips whose response would run past the run's end get no sample. Training repeats are
separate samples (repeat 0, 1); test runs give the average of their repeats (repeat -1) and,
optionally, each repeat.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from cineneuron.errors import CNError
from cineneuron.schemas.datasets import CC2017Config
from cineneuron.fmri.preprocess import Run, SubjectData, align_tr_clips, lag_in_trs, preprocess_run, trim_run
from cineneuron.fmri.qc import subject_qc
from cineneuron.fmri.readers import open_mat, read_cifti_cortex
from cineneuron.fmri.selection import VoxelSelection, mask_hash, options_error, segment_reliability, select_voxels
from cineneuron.schemas.records import clip_id

Loader = Callable[[], np.ndarray]  # returns one run as (n_vol, n_source_voxels)
_TRAIN_MAT, _TEST_MAT = "training_fmri.mat", "testing_fmri.mat"


def load_cc2017_subject(
    root: str | Path,
    subject: int,
    *,
    source: str = "cc2017",
    form: Literal["auto", "raw", "mat"] = "auto",
    lag_s: float = 4.0,
    tr: float = 2.0,
    selection: VoxelSelection | None = None,
    test_single_repeats: bool = False,
    detrend_order: int | None = 4,
    existing_mask=None,
    n_keep: int = 240,
    n_tr: int = 1,
) -> SubjectData:
    """Read, preprocess, select and align one cc2017 subject. See the module docstring."""
    try:
        cfg = CC2017Config(
            source=source, form=form, lag_s=lag_s, tr=tr, selection=selection or VoxelSelection(),
            test_single_repeats=test_single_repeats, detrend_order=detrend_order, n_keep=n_keep, n_tr=n_tr,
        )
    except ValueError as exc:  # pydantic's ValidationError
        raise options_error("cc2017", exc) from exc
    return load_cc2017(root, subject, cfg, existing_mask=existing_mask)


def load_cc2017(root: str | Path, subject: int, cfg: CC2017Config, existing_mask=None) -> SubjectData:
    """The same as load_cc2017_subject with a config object (what a YAML config or the CLI builds)."""
    sdir = Path(root) / f"subject{subject}"
    if not sdir.is_dir():
        raise CNError(f"no subject folder {sdir}; expected ROOT/subject{{k}}/fmri/...")
    form = _resolve_form(sdir, cfg.form)
    warnings: list[str] = []
    with ExitStack() as stack:
        if form == "raw":
            train, test = _raw_runs(sdir, cfg, warnings)
            detrend_order = cfg.detrend_order
        else:
            train, test = _mat_runs(sdir, stack)
            detrend_order = None
        data = _assemble(train, test, cfg, subject, detrend_order, existing_mask)
    data.qc["form"] = form
    data.qc["warnings"] += sorted(set(warnings))
    return data


# --- discovery --------------------------------------------------------------------------------


def _find_mat(sdir: Path, name: str) -> Path | None:
    for cand in (sdir / "fmri" / name, sdir / name):
        if cand.is_file():
            return cand
    return None


def _numbered_dirs(parent: Path, prefix: str) -> list[tuple[str, Path]]:
    pat = re.compile(rf"{prefix}(\d+)$")
    found = [(int(m.group(1)), p) for p in parent.glob(f"{prefix}*") if p.is_dir() and (m := pat.match(p.name))]
    return [(p.name, p) for _, p in sorted(found)]


def _resolve_form(sdir: Path, form: str) -> str:
    has_mat = _find_mat(sdir, _TRAIN_MAT) is not None
    has_raw = bool(_numbered_dirs(sdir / "fmri", "seg"))
    if form == "auto":
        form = "mat" if has_mat else "raw" if has_raw else ""
    if form == "mat" and not has_mat:
        raise CNError(f"no {_TRAIN_MAT} in {sdir / 'fmri'} or {sdir}; use form 'raw' or add the file")
    if form == "raw" and not has_raw:
        raise CNError(f"no raw runs {sdir / 'fmri'}/seg{{n}}/cifti/seg{{n}}_{{1,2}}_Atlas.dtseries.nii; use form 'mat'")
    if not form:
        raise CNError(f"{sdir} holds neither {_TRAIN_MAT} nor fmri/seg{{n}}/cifti/*.dtseries.nii")
    return form


def _run_files(run_dir: Path) -> list[Path]:
    """The repeats of a raw run, ordered by their repeat number."""
    pat = re.compile(rf"{re.escape(run_dir.name)}_(\d+)_Atlas\.dtseries\.nii$")
    found = [(int(m.group(1)), p) for p in (run_dir / "cifti").glob("*.dtseries.nii") if (m := pat.match(p.name))]
    if not found:
        raise CNError(f"no {run_dir.name}_{{r}}_Atlas.dtseries.nii files in {run_dir / 'cifti'}")
    return [p for _, p in sorted(found)]


def _trim_bounds(n_vol: int, run: str, cfg: CC2017Config) -> tuple[int, int]:
    """(first, last) volumes to drop, from the run's length as the official preprocessing does
    (245 volumes: drop 1 leading, else 2; 4 trailing). Any other length is refused: trimming it
    by its name would silently end one TR off."""
    tail = cfg.trim_tail
    for head in (1, 2):
        if n_vol == head + cfg.n_keep + tail:
            return head, tail
    raise CNError(f"run {run} has {n_vol} volumes; cc2017 runs have {cfg.n_keep + 1 + tail} or "
                  f"{cfg.n_keep + 2 + tail} (1 or 2 leading + {cfg.n_keep} kept + {tail} trailing); check the file or set n_keep")


def _raw_loader(path: Path, name: str, cfg: CC2017Config, warnings: list[str]) -> Loader:
    def load() -> np.ndarray:
        data, step = read_cifti_cortex(path)  # (n_vol, n_cortex)
        if step is not None and step > 0 and abs(step - cfg.tr) > 1e-3:
            warnings.append(f"CIFTI series step {step} s differs from tr {cfg.tr} s (first seen in {path.name})")
        head, tail = _trim_bounds(data.shape[0], path.name, cfg)
        return trim_run(data, head, tail, cfg.n_keep, path.name)

    return load


def _raw_runs(sdir: Path, cfg: CC2017Config, warnings: list[str]):
    fdir = sdir / "fmri"
    train = {n: [_raw_loader(p, n, cfg, warnings) for p in _run_files(d)] for n, d in _numbered_dirs(fdir, "seg")}
    test = {n: [_raw_loader(p, n, cfg, warnings) for p in _run_files(d)] for n, d in _numbered_dirs(fdir, "test")}
    return train, test


def _mat_runs(sdir: Path, stack: ExitStack):
    mat = stack.enter_context(open_mat(_find_mat(sdir, _TRAIN_MAT)))
    reps = [mat.runs("fmri", f) for f in ("data1", "data2")]
    if reps[0].matlab_shape != reps[1].matlab_shape:
        raise CNError(f"{mat.path}: fmri.data1 is {reps[0].matlab_shape} but fmri.data2 is {reps[1].matlab_shape}")
    train = {f"seg{k + 1}": [(lambda r=r, k=k: r.run(k)) for r in reps] for k in range(reps[0].n_runs)}
    test: dict[str, list[Loader]] = {}
    test_path = _find_mat(sdir, _TEST_MAT)
    if test_path is not None:
        tmat = stack.enter_context(open_mat(test_path))
        names = [f for f in tmat.fields("fmritest") if re.fullmatch(r"test\d+", f)]
        for name in sorted(names, key=lambda f: int(f[4:])):
            runs = tmat.runs("fmritest", name)
            test[name] = [(lambda r=runs, k=k: r.run(k)) for k in range(runs.n_runs)]
    return train, test


# --- assembly ---------------------------------------------------------------------------------


def _load(loader: Loader, label: str, n_source: int | None) -> np.ndarray:
    data = loader()  # (n_vol, n_source)
    if n_source is not None and data.shape[1] != n_source:
        raise CNError(f"run {label} has {data.shape[1]} cortical voxels, the first run had {n_source}")
    return data


def _clips(name: str, n_vol: int, cfg: CC2017Config) -> tuple[np.ndarray, np.ndarray, list[str]]:
    t, start = align_tr_clips(n_vol, n_vol, lag_in_trs(cfg.lag_s, cfg.tr), cfg.n_tr)
    video = f"stimuli/{name}.mp4"
    ids = [clip_id(cfg.source, video, float(i) * cfg.tr, float(i) * cfg.tr + cfg.tr) for i in t]
    return t, start, ids


def _make_run(name: str, split: str, repeat: int, data: np.ndarray, cfg: CC2017Config) -> Run:
    t, start, ids = _clips(name, data.shape[0], cfg)
    return Run(name=name, split=split, repeat=repeat, data=data, tr_index=t, response_start=start, clip_ids=ids)


def _assemble(train, test, cfg: CC2017Config, subject, detrend_order, existing_mask) -> SubjectData:
    if not train:
        raise CNError("no training runs found; cc2017 needs seg{n} runs or training_fmri.mat")
    lag_in_trs(cfg.lag_s, cfg.tr)  # fail early on a bad lag
    n_source = None
    full: list[tuple[str, int, np.ndarray]] = []  # (segment, repeat, (n_vol, n_source))
    constant = nan = None
    for seg, loaders in train.items():
        for rep, loader in enumerate(loaders):
            label = f"{seg} repeat {rep + 1}"
            raw = _load(loader, label, n_source)
            n_source = raw.shape[1]
            data, info = preprocess_run(raw, label, detrend_order)
            if constant is None:
                constant, nan = np.zeros(n_source, bool), np.zeros(n_source, bool)
            constant[info.constant] = True
            nan[info.nan] = True
            full.append((seg, rep, data))
    pairs = _repeat_pairs(full)
    z = segment_reliability(pairs) if len(pairs) >= 2 else None  # (n_segments, n_source)
    reliability_all = np.tanh(z.mean(axis=0)) if z is not None else None
    mask, sel_info = select_voxels(cfg.selection, n_source, z=z, dead=constant | nan, existing_mask=existing_mask)
    runs = [_make_run(seg, "train", rep, data[:, mask], cfg) for seg, rep, data in full]
    del full, pairs
    runs += _test_runs(test, cfg, mask, detrend_order, n_source)
    data = SubjectData(
        source=cfg.source, subject=subject, n_tr=cfg.n_tr, mask=mask, mask_hash=mask_hash(mask), qc={},
        reliability=reliability_all[mask] if reliability_all is not None else None, runs=runs,
    )
    data.qc = subject_qc(
        source=cfg.source, subject=subject, mask=mask, mask_hash=data.mask_hash, selection=sel_info,
        reliability_all=reliability_all, constant=constant, nan=nan, n_samples=data.n_samples,
        extra={"n_train_runs": len(runs) - sum(r.split == "test" for r in runs), "n_test_runs": len(test),
               "lag_tr": lag_in_trs(cfg.lag_s, cfg.tr)},
    )
    if sel_info.get("warning"):
        data.qc["warnings"].append(sel_info["warning"])
    return data


def _repeat_pairs(full) -> list[tuple[np.ndarray, np.ndarray]]:
    """(repeat 0, repeat 1) of each segment that has both and equal lengths."""
    by_seg: dict[str, dict[int, np.ndarray]] = {}
    for seg, rep, data in full:
        by_seg.setdefault(seg, {})[rep] = data
    return [(r[0], r[1]) for r in by_seg.values() if 0 in r and 1 in r and r[0].shape == r[1].shape]


def _test_runs(test, cfg: CC2017Config, mask: np.ndarray, detrend_order, n_source: int) -> list[Run]:
    """Per test run: the average of its repeats (repeat -1), then optionally each repeat."""
    runs: list[Run] = []
    for name, loaders in test.items():
        total, singles = None, []
        for rep, loader in enumerate(loaders):
            label = f"{name} repeat {rep + 1}"
            raw = _load(loader, label, n_source)[:, mask]  # select first: per-voxel steps commute
            data, _ = preprocess_run(raw, label, detrend_order)  # (n_vol, n_voxels)
            if total is not None and data.shape != total.shape:
                raise CNError(f"run {label} has {data.shape[0]} volumes, repeat 1 had {total.shape[0]}")
            total = data.astype(np.float64) if total is None else total + data
            if cfg.test_single_repeats:
                singles.append(_make_run(name, "test", rep, data, cfg))
        runs.append(_make_run(name, "test", -1, (total / len(loaders)).astype(np.float32), cfg))
        runs += singles
    return runs
