"""CineBrain as released: the preprocessed per-TR volumes, or the raw dtseries + behaviour CSVs.

Layouts (ROOT the dataset root, k the subject; `sub_0001` is the release's spelling):

    preprocessed   ROOT/sub_0001/visual_audio/{t}.npy   t = 0..n-1 straight through all runs, each
                                                        1-D: already ROI-masked, z-scored over all
                                                        runs (N-1) and shifted by +4 s
                   ROOT/[sub_0001/]roi_var_visual.npy   optional: the bool mask over the 91,282
                                                        grayordinates the volumes were cut with
    raw            ROOT/sub_0001/dtseries/sub-0001_task-shape_run-{r}_space-fsLR_den-91k_bold.dtseries.nii
                   ROOT/sub_0001/beh_data/sub_0001_{r}.csv   columns videoStartTime, videoStopTime (s)
                   ROOT/[sub_0001/]roi_var_{roi}.npy         the ROI mask(s), as the official script saves
    pairing        the CineSync JSON lists (`cineneuron.sources.cinebrain_lists`): item i answers
                   clip video_annos/clips/{i:06d}.mp4 with the TRs its "fmri" paths name.

The raw path does what the official `cifit2npy.py` does: per run r, the volumes
[int((start+4)/0.8)+1, int((stop+4)/0.8)+1) of the run (start/stop from the first row of its
CSV), concatenated over runs in run order, z-scored per voxel over all of them with N-1
(constant voxels 0), masked by the ROI file. Its rows are numbered as the release numbers its
files, so the lists pair both paths alike. Preprocessed volumes are used as they are (no second
z-score, no second shift). Without lists, clip i is taken to be answered by TRs
[n_tr·i, n_tr·(i+1)) (our assumption: the lists' generator is not public).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from cineneuron.errors import CNError
from cineneuron.fmri.preprocess import Run, SubjectData
from cineneuron.fmri.qc import subject_qc
from cineneuron.fmri.selection import as_mask, mask_hash
from cineneuron.schemas.datasets import CineBrainConfig
from cineneuron.schemas.records import SPLITS, clip_id
from cineneuron.sources.cinebrain_lists import CLIP_DIR, find_lists, read_lists, split_of, subject_dirs

PRE_DIR, RAW_DIR, BEH_DIR = "visual_audio", "dtseries", "beh_data"
_RUN_RE = re.compile(r"_run-(\d+)_")


def official_first_tr(t_s: float, tr: float = 0.8, shift_s: float = 4.0) -> int:
    """The first volume the official script keeps for a video starting at t_s: int((t+4)/tr) + 1."""
    return int((t_s + shift_s) / tr) + 1


def detect_layout(root: Path, subject: int) -> tuple[str, Path]:
    """('preprocessed' | 'raw' | 'custom', subject folder); one line naming what was looked for."""
    for sdir in subject_dirs(root, subject):
        if any((sdir / PRE_DIR).glob("*.npy")):
            return "preprocessed", sdir
        if any((sdir / RAW_DIR).glob("*.dtseries.nii")):
            return "raw", sdir
        if (sdir / "fmri").is_dir():
            return "custom", sdir
    s = f"sub_{subject:04d}"
    raise CNError(f"no CineBrain subject {subject} under {root}: looked for {root}/{s}/{PRE_DIR}/{{t}}.npy "
                  f"(preprocessed release) or {root}/{s}/{RAW_DIR}/sub-{subject:04d}_task-shape_run-{{r}}_space-fsLR_den-91k_bold.dtseries.nii "
                  f"with {s}/{BEH_DIR}/{s}_{{r}}.csv (raw); also sub-{subject:02d}/ for either")


def load_release(root: Path, subject: int, cfg: CineBrainConfig, kind: str, sdir: Path,
                 existing_mask=None) -> SubjectData:
    if kind == "preprocessed":
        stream = _read_preprocessed(sdir)
        mask, roi_file = _release_mask(root, sdir, cfg.rois, stream.shape[1])
        constant = np.zeros(mask.size, bool)
        steps = "used as released: ROI-masked, z-scored (N-1) and shifted +4 s by the official script"
        extra = {"n_volumes": int(stream.shape[0])}
    else:
        stream, mask, constant, roi_file, extra = _read_raw(root, sdir, cfg)
        steps = (f"official cifit2npy.py steps: volumes [int((start+{cfg.shift_s:g})/{cfg.tr:g})+1, "
                 f"int((stop+{cfg.shift_s:g})/{cfg.tr:g})+1) per run, z-score over all runs (N-1), ROI mask")
    if existing_mask is not None:
        existing = as_mask(existing_mask, mask.size, "existing mask")
        if not np.array_equal(existing, mask):
            raise CNError(f"the store uses voxel mask {mask_hash(existing)} but this CineBrain release gives "
                          f"mask {mask_hash(mask)}; ingest the same ROI or start a new store")
    items = _pairing(root, subject, stream.shape[0], cfg)
    n_tr = len(items[0][2]) if items else cfg.n_tr
    runs = _runs(cfg.source, stream, items, cfg.clip_s)
    data = SubjectData(source=cfg.source, subject=subject, n_tr=n_tr, mask=mask, mask_hash=mask_hash(mask),
                       qc={}, reliability=None, runs=runs)
    preprocessing = {"path": kind, "steps": steps, "roi_file": roi_file,
                     "pairing": items[0][3] if items else "none"}
    data.qc = subject_qc(source=cfg.source, subject=subject, mask=mask, mask_hash=data.mask_hash,
                         selection={"method": "rois", "rois": list(cfg.rois), "roi_file": roi_file},
                         reliability_all=None, constant=constant, nan=np.zeros(mask.size, bool),
                         n_samples=data.n_samples, extra={**extra, "preprocessing": preprocessing})
    return data


# --- the two inputs ---------------------------------------------------------------------------


def _numbered(files, what: str) -> list[Path]:
    """Files whose stem is an integer, in number order; a gap in 0..n-1 is an error naming it."""
    nums = sorted((int(p.stem), p) for p in files if p.stem.isdigit())
    for expect, (i, p) in enumerate(nums):
        if i != expect:
            raise CNError(f"{what}: TR file {expect}.npy is missing (next {p.name}); the release numbers them 0..n-1")
    return [p for _, p in nums]


def _read_preprocessed(sdir: Path) -> np.ndarray:
    files = _numbered((sdir / PRE_DIR).glob("*.npy"), str(sdir / PRE_DIR))
    first = np.load(files[0], allow_pickle=False)
    stream = np.empty((len(files), first.size), np.float32)  # (n_tr, V)
    for t, p in enumerate(files):
        v = np.load(p, allow_pickle=False)
        if v.ndim != 1 or v.size != first.size:
            raise CNError(f"{p} has shape {v.shape}, expected ({first.size},) like {files[0].name}")
        stream[t] = v
    if not np.isfinite(stream).all():
        t = int(np.flatnonzero(~np.isfinite(stream).all(1))[0])
        raise CNError(f"{sdir / PRE_DIR}/{t}.npy holds NaN/inf; the release has none (it set them to 0)")
    return stream


def _roi_files(root: Path, sdir: Path, rois) -> list[Path]:
    return [next((d / f"roi_var_{r}.npy" for d in (sdir, root) if (d / f"roi_var_{r}.npy").is_file()), None)
            for r in rois]


def _release_mask(root: Path, sdir: Path, rois, n_vox: int) -> tuple[np.ndarray, str | None]:
    """The grayordinate mask the volumes were cut with, when its file is there; else all V."""
    found = [p for p in _roi_files(root, sdir, rois) if p is not None]
    if not found:
        return np.ones(n_vox, bool), None
    mask = np.load(found[0], allow_pickle=False).astype(bool)
    for p in found[1:]:
        mask |= np.load(p, allow_pickle=False).astype(bool)
    if mask.ndim != 1 or int(mask.sum()) != n_vox:
        raise CNError(f"{found[0]} selects {int(mask.sum())} grayordinates but the volumes hold {n_vox}; "
                      "give the mask the release was cut with")
    return mask, "+".join(p.name for p in found)


def _run_files(sdir: Path) -> list[tuple[int, Path, Path]]:
    runs = []
    for p in (sdir / RAW_DIR).glob("*.dtseries.nii"):
        m = _RUN_RE.search(p.name)
        if m:
            r = int(m.group(1))
            beh = sorted((sdir / BEH_DIR).glob(f"*_{r}.csv"))  # sub_0001_{r}.csv in the release
            runs.append((r, p, beh[0] if beh else sdir / BEH_DIR / f"sub_{sdir.name[4:]}_{r}.csv"))
    if not runs:
        raise CNError(f"no *_run-{{r}}_*.dtseries.nii files in {sdir / RAW_DIR}")
    return sorted(runs)


def _video_window(path: Path) -> tuple[float, float]:
    if not path.is_file():
        raise CNError(f"behaviour file {path} is missing; each run needs {BEH_DIR}/{path.name}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    try:
        return float(rows[0]["videoStartTime"]), float(rows[0]["videoStopTime"])
    except (IndexError, KeyError, ValueError) as e:
        raise CNError(f"{path}: expected a header with videoStartTime,videoStopTime and a first row ({e})") from None


def _read_raw(root: Path, sdir: Path, cfg: CineBrainConfig):
    import nibabel as nib

    roi = _roi_files(root, sdir, cfg.rois)
    if any(p is None for p in roi):
        missing = cfg.rois[[p is None for p in roi].index(True)]
        raise CNError(f"the raw CineBrain path needs the ROI mask roi_var_{missing}.npy (a bool per grayordinate, "
                      f"as cifit2npy.py saves it) in {sdir} or {root}")
    parts, kept = [], {}
    mask = None
    for r, nii, beh in _run_files(sdir):
        start, stop = _video_window(beh)
        a, b = official_first_tr(start, cfg.tr, cfg.shift_s), official_first_tr(stop, cfg.tr, cfg.shift_s)
        try:
            data = np.asarray(nib.load(str(nii)).get_fdata(), dtype=np.float64)  # (n_vol, n_grayordinates)
        except Exception as e:  # nibabel raises many types for a bad file
            raise CNError(f"cannot read CIFTI file {nii}: {e}") from None
        if mask is None:
            mask = np.zeros(data.shape[1], bool)
            for p in roi:
                mask |= as_mask(p, data.shape[1], f"ROI {p.name}")
        if b > data.shape[0]:
            raise CNError(f"run {r}: the video ends at volume {b} (+{cfg.shift_s:g} s) but {nii.name} has {data.shape[0]}")
        parts.append(data[a:b][:, mask])
        kept[str(r)] = [a, b]
    stream = np.concatenate(parts)  # (n_tr, V): z-scoring is per voxel, so masking first changes nothing
    std = stream.std(axis=0, ddof=1)
    z = (stream - stream.mean(axis=0)) / np.where(std > 0, std, 1.0)
    z[:, ~(std > 0)] = 0.0  # the official script turns 0/0 into 0
    constant = np.zeros(mask.size, bool)
    constant[np.flatnonzero(mask)[~(std > 0)]] = True
    return z.astype(np.float32), mask, constant, "+".join(p.name for p in roi), {
        "n_runs": len(parts), "n_volumes": int(stream.shape[0]), "volumes_kept": kept}


# --- pairing with clips -----------------------------------------------------------------------


def _pairing(root: Path, subject: int, n_stream: int, cfg: CineBrainConfig) -> list[tuple[str, str, tuple, str]]:
    """[(video, split, TRs, how)] per clip, from the CineSync lists or consecutive n_tr windows."""
    lists = find_lists(root, subject)
    if lists:
        items = read_lists(lists)
        lens = {len(i.trs) for i in items}
        if len(lens) != 1:
            raise CNError(f"CineSync lists give clips {sorted(lens)} TRs each; every clip needs the same number")
        for i in items:
            if list(i.trs) != list(range(i.trs[0], i.trs[0] + len(i.trs))) or i.trs[-1] >= n_stream:
                raise CNError(f"{i.list_file}: clip {i.video} names TRs {list(i.trs)}; they must be consecutive "
                              f"and below {n_stream} (the subject's volumes)")
        how = "CineSync lists: " + ", ".join(p.name for p in lists)
        return [(i.video, i.split, i.trs, how) for i in items]
    n = cfg.n_tr
    how = f"no CineSync lists: clip i = TRs [{n}i, {n}i+{n}) (assumed)"
    return [(f"{CLIP_DIR}/{i:06d}.mp4", split_of("", i), tuple(range(n * i, n * i + n)), how)
            for i in range(n_stream // n)]


def _runs(source: str, stream: np.ndarray, items, clip_s: float) -> list[Run]:
    seen: dict[str, int] = {}
    groups: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for video, split, trs, _ in items:
        cid = clip_id(source, video, 0.0, clip_s)
        rep = seen.get(cid, 0)
        seen[cid] = rep + 1
        groups.setdefault((split, rep), []).append((trs[0], cid))
    runs = []
    for (split, rep), rows in sorted(groups.items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])):
        rows.sort()
        t = np.array([r for r, _ in rows], dtype=np.int64)
        runs.append(Run(name="va", split=split, repeat=rep, data=stream, tr_index=t, response_start=t,
                        clip_ids=[c for _, c in rows]))
    return runs
