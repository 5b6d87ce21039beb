"""CineBrain fMRI: the released layouts, or our own per-run layout, -> aligned 4 s clip samples.

`load_cinebrain` detects the layout: the release's preprocessed volumes or its raw dtseries
(both in `cinebrain_release.py`, which documents them), else the per-run layout below, read
before the release's was known (kept for data already arranged that way):

    ROOT/sub-{k:02d}/            also accepted: sub-{k}, sub-{k:04d}, sub{k}, subject{k}
      fmri/{run}/{...}{i}.npy    one file per TR of the run, the TR number i = 0..n-1 being the
                                 last integer of the file stem (e.g. 00012.npy, tr_12.npy);
                                 each a 1-D float array of all the subject's voxels
      behavior/{run}.csv         one row per video shown in the run, with a header:
                                   video           path of the video relative to ROOT
                                   start_s,stop_s  when it started and stopped, seconds from the
                                                   onset of the run's first TR
                                   video_offset_s  optional: video time shown at start_s (0)
                                   split           optional: train or test (train)
      roi/visual.npy             int indices into the per-TR array (0-based)
      roi/hippocampus.npy
      roi/mpfc.npy               optional

Processing: the selected ROIs' voxels (their union, in source-index order) are z-scored per voxel
over all runs together (constant -> 0). Each video is cut into consecutive clip_s clips from
video_offset_s; clip i is clip_id("cinebrain", video, off + i·clip_s, off + (i+1)·clip_s), shown
at run time start_s + i·clip_s and answered by the n_tr = clip_s / tr volumes starting at the first
TR at or after that time plus shift_s (4 s). Clips that do not end by stop_s, or whose response
runs past the end of the run, get no sample. A clip shown again gets the next repeat number.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from cineneuron.errors import CNError
from cineneuron.schemas.datasets import ROI_NAMES, TOL as _TOL, CineBrainConfig
from cineneuron.fmri.preprocess import Run, SubjectData, nonfinite_columns, time_to_tr
from cineneuron.fmri.qc import subject_qc
from cineneuron.fmri.selection import as_mask, mask_hash, options_error
from cineneuron.schemas.records import SPLITS, clip_id



def load_cinebrain_subject(
    root: str | Path,
    subject: int,
    *,
    rois: tuple[str, ...] | str = ("visual",),
    source: str = "cinebrain",
    tr: float = 0.8,
    clip_s: float = 4.0,
    shift_s: float = 4.0,
    existing_mask=None,
) -> SubjectData:
    """Read, z-score and align one CineBrain subject. See the module docstring for the layout."""
    try:
        cfg = CineBrainConfig(source=source, rois=rois, tr=tr, clip_s=clip_s, shift_s=shift_s)
    except ValueError as exc:  # pydantic's ValidationError
        raise options_error("CineBrain", exc) from exc
    return load_cinebrain(root, subject, cfg, existing_mask=existing_mask)


def load_cinebrain(root: str | Path, subject: int, cfg: CineBrainConfig, existing_mask=None) -> SubjectData:
    from cineneuron.fmri.cinebrain_release import detect_layout, load_release

    root = Path(root)
    kind, sdir = detect_layout(root, subject)
    if kind != "custom":
        return load_release(root, subject, cfg, kind, sdir, existing_mask)
    run_names = _run_names(sdir)
    n_source = _first_tr(sdir / "fmri" / run_names[0]).size
    mask, roi_counts = _roi_mask(sdir, cfg.rois, n_source)
    if existing_mask is not None:
        existing = as_mask(existing_mask, n_source, "existing mask")
        if not np.array_equal(existing, mask):
            raise CNError(
                f"the store uses voxel mask {mask_hash(existing)} but ROIs {'+'.join(cfg.rois)} give "
                f"mask {mask_hash(mask)}; ingest with the store's ROIs or start a new store"
            )
    volumes = {r: _read_run(sdir / "fmri" / r, mask, n_source) for r in run_names}  # (n_vol, V) each
    constant_sel, nan_sel = _zscore_all(volumes)
    runs = _clip_runs(root, sdir, volumes, cfg)
    data = SubjectData(source=cfg.source, subject=subject, n_tr=cfg.n_tr, mask=mask, mask_hash=mask_hash(mask),
                       qc={}, reliability=None, runs=runs)
    constant = np.zeros(n_source, bool)
    nan = np.zeros(n_source, bool)
    constant[np.flatnonzero(mask)[constant_sel]] = True
    nan[np.flatnonzero(mask)[nan_sel]] = True
    data.qc = subject_qc(
        source=cfg.source, subject=subject, mask=mask, mask_hash=data.mask_hash,
        selection={"method": "rois", "rois": list(cfg.rois)}, reliability_all=None,
        constant=constant, nan=nan, n_samples=data.n_samples,
        extra={"roi_counts": roi_counts, "n_runs": len(volumes),
               "n_volumes": int(sum(v.shape[0] for v in volumes.values())),
               "preprocessing": {"path": "custom", "steps": "z-score over all runs (N), shift by time_to_tr"}},
    )
    return data


# --- files ------------------------------------------------------------------------------------


def _natural_key(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _run_names(sdir: Path) -> list[str]:
    runs = sorted((p.name for p in (sdir / "fmri").iterdir() if p.is_dir()), key=_natural_key)
    if not runs:
        raise CNError(f"no run folders in {sdir / 'fmri'}; expected fmri/{{run}}/{{tr}}.npy")
    return runs


def _tr_files(run_dir: Path) -> list[Path]:
    """The run's per-TR files in TR order; a gap in the numbering is an error naming the TR."""
    numbered = []
    for p in run_dir.glob("*.npy"):
        nums = re.findall(r"\d+", p.stem)
        if nums:
            numbered.append((int(nums[-1]), p))
    numbered.sort()
    if not numbered:
        raise CNError(f"no per-TR .npy files in {run_dir}")
    for expect, (i, p) in enumerate(numbered):
        if i != expect:
            raise CNError(f"run {run_dir.name}: TR {expect} is missing (next file {p.name}); the TR files must be numbered 0..n-1")
    return [p for _, p in numbered]


def _first_tr(run_dir: Path) -> np.ndarray:
    return np.load(_tr_files(run_dir)[0], allow_pickle=False)


def _roi_mask(sdir: Path, rois: tuple[str, ...], n_source: int) -> tuple[np.ndarray, dict[str, int]]:
    mask = np.zeros(n_source, dtype=bool)
    counts = {}
    for roi in rois:
        path = sdir / "roi" / f"{roi}.npy"
        if not path.is_file():
            raise CNError(f"ROI file {path} is missing; choose ROIs from those in {sdir / 'roi'}")
        roi_mask = as_mask(path, n_source, f"ROI {roi}")
        counts[roi] = int(roi_mask.sum())
        mask |= roi_mask
    return mask, counts


def _read_run(run_dir: Path, mask: np.ndarray, n_source: int) -> np.ndarray:
    rows = []
    for p in _tr_files(run_dir):
        vol = np.load(p, allow_pickle=False)
        if vol.ndim != 1 or vol.size != n_source:
            raise CNError(f"run {run_dir.name}: {p.name} has shape {vol.shape}, expected ({n_source},) like the first TR")
        rows.append(vol[mask])
    return np.stack(rows).astype(np.float64)  # (n_vol, V)


def _zscore_all(volumes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Z-score each voxel over all runs together, in place. Returns (constant, missing) over V.

    A voxel missing (all NaN) in a run is 0 there; NaN at some TRs of a run is an error naming it.
    """
    n_vox = next(iter(volumes.values())).shape[1]
    missing = np.zeros(n_vox, bool)
    for run, data in volumes.items():
        cols = nonfinite_columns(data, run)
        data[:, cols] = np.nan  # inf too: the stats below skip it
        missing[cols] = True
    allv = np.concatenate(list(volumes.values()))  # (sum n_vol, V)
    finite = np.isfinite(allv)
    n = finite.sum(axis=0)
    mean = np.where(n > 0, np.nansum(allv, axis=0) / np.maximum(n, 1), 0.0)
    var = np.where(n > 0, np.nansum((allv - mean) ** 2, axis=0) / np.maximum(n, 1), 0.0)
    std = np.sqrt(var)
    constant = (std <= 0) & (n > 0)
    scale = np.where(std > 0, std, 1.0)
    for run, data in volumes.items():
        z = (data - mean) / scale
        z[:, std <= 0] = 0.0
        z[~np.isfinite(z)] = 0.0  # only whole-run missing voxels are non-finite here
        volumes[run] = z.astype(np.float32)
    return constant, missing & ~constant


def _read_behaviour(path: Path) -> list[dict]:
    if not path.is_file():
        raise CNError(f"behaviour file {path} is missing; each fmri/{{run}} needs behavior/{{run}}.csv")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"video", "start_s", "stop_s"} - set(reader.fieldnames or [])
        if missing:
            raise CNError(f"{path} lacks column(s) {', '.join(sorted(missing))}; expected video,start_s,stop_s")
        rows = []
        for i, row in enumerate(reader, start=2):
            try:
                split = (row.get("split") or "train").strip()
                rows.append({
                    "video": Path(row["video"].strip()).as_posix(),
                    "start_s": float(row["start_s"]), "stop_s": float(row["stop_s"]),
                    "offset_s": float(row.get("video_offset_s") or 0.0), "split": split,
                })
            except ValueError as exc:
                raise CNError(f"{path} line {i}: {exc}") from exc
            if split not in SPLITS:
                raise CNError(f"{path} line {i}: split {split!r} is not one of {', '.join(SPLITS)}")
    return rows


# --- alignment --------------------------------------------------------------------------------


def _clip_runs(root: Path, sdir: Path, volumes: dict[str, np.ndarray], cfg: CineBrainConfig) -> list[Run]:
    """Run objects per (run, split, repeat); they share the run's array (no copies)."""
    n_tr = cfg.n_tr
    seen: dict[str, int] = {}  # clip id -> times shown so far
    runs: list[Run] = []
    for run, data in volumes.items():
        groups: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
        for row in _read_behaviour(sdir / "behavior" / f"{run}.csv"):
            n_clips = int(np.floor((row["stop_s"] - row["start_s"]) / cfg.clip_s + _TOL))
            for i in range(max(n_clips, 0)):
                onset = row["start_s"] + i * cfg.clip_s  # run time the clip starts
                resp = time_to_tr(onset + cfg.shift_s, cfg.tr)
                if resp + n_tr > data.shape[0]:
                    continue  # its response runs past the end of the run
                v0 = row["offset_s"] + i * cfg.clip_s
                cid = clip_id(cfg.source, row["video"], v0, v0 + cfg.clip_s)
                rep = seen.get(cid, 0)
                seen[cid] = rep + 1
                groups.setdefault((row["split"], rep), []).append((time_to_tr(onset, cfg.tr), resp, cid))
        for (split, rep), items in groups.items():
            items.sort()
            runs.append(Run(
                name=run, split=split, repeat=rep, data=data,
                tr_index=np.array([t for t, _, _ in items], dtype=np.int64),
                response_start=np.array([s for _, s, _ in items], dtype=np.int64),
                clip_ids=[c for _, _, c in items],
            ))
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(runs, key=lambda r: order.get(r.split, 9))  # train first; stable within a split
