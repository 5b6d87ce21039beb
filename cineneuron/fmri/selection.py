"""Voxel selection per subject: test-retest reliability (default), a mask file, or all voxels.

Reliability follows the cc2017 practice: for each training segment, the voxel-wise Pearson
correlation between its two repeats; Fisher z; a one-sided one-sample t-test across segments
(H1: mean z > 0); keep voxels with p below a Bonferroni-corrected threshold alpha / n_tested.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from cineneuron.errors import CNError
from cineneuron.schemas.datasets import VoxelSelection  # noqa: F401  (re-exported)


def options_error(what: str, exc: ValueError) -> CNError:
    """A one-line CNError from a pydantic ValidationError (field: message; ...)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return CNError(f"bad {what} options: {exc}")
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in errors()]
    return CNError(f"bad {what} options: {'; '.join(parts)}")


def mask_hash(mask: np.ndarray) -> str:
    """Stable id of a mask: sha1 of the packed bools plus the length (16 hex chars)."""
    mask = np.asarray(mask, dtype=bool)
    h = hashlib.sha1(np.packbits(mask).tobytes())
    h.update(f"|{mask.size}".encode())
    return h.hexdigest()[:16]


def as_mask(value, n_voxels: int, what: str) -> np.ndarray:
    """A bool mask over n_voxels from a bool array, int indices, or a .npy path holding either."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise CNError(f"{what}: mask file {path} does not exist")
        try:
            value = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise CNError(f"{what}: cannot read mask file {path} as .npy: {exc}") from exc
    arr = np.asarray(value)
    if arr.dtype == bool:
        if arr.ndim != 1 or arr.size != n_voxels:
            raise CNError(f"{what}: bool mask has shape {arr.shape}, the subject has {n_voxels} voxels")
        return arr.copy()
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise CNError(f"{what}: expected a 1-D bool mask or 1-D int indices, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_voxels):
        raise CNError(f"{what}: voxel indices must lie in [0, {n_voxels}), got {arr.min()}..{arr.max()}")
    if np.unique(arr).size != arr.size:
        raise CNError(f"{what}: voxel indices repeat; give each voxel once")
    mask = np.zeros(n_voxels, dtype=bool)
    mask[arr] = True
    return mask


def repeat_correlation(rep_a: np.ndarray, rep_b: np.ndarray) -> np.ndarray:
    """Voxel-wise Pearson r over time between two repeats. (n_vol, V), (n_vol, V) -> (V,).

    A voxel constant in either repeat has r = 0 (no evidence of reliability).
    """
    a = rep_a - rep_a.mean(axis=0)
    b = rep_b - rep_b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    num = (a * b).sum(axis=0)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def fisher_z(r: np.ndarray) -> np.ndarray:
    return np.arctanh(np.clip(r, -0.999999, 0.999999))


def fdr_threshold(p: np.ndarray, alpha: float) -> float:
    """Benjamini-Hochberg: the largest p_(k) with p_(k) <= k/m · alpha (p < it or = it passes);
    0 when none does. p: the tested voxels' p-values."""
    m = p.size
    if m == 0:
        return 0.0
    ps = np.sort(p)
    ok = np.flatnonzero(ps <= alpha * np.arange(1, m + 1) / m)
    return float(ps[ok[-1]]) if ok.size else 0.0


def low_survival_warning(n_selected: int, n_tested: int, how: str) -> str | None:
    """One line when the reliability test keeps fewer than 1 % or fewer than 100 voxels."""
    if n_selected < 100 or n_selected < 0.01 * n_tested:
        return (f"only {n_selected} of {n_tested} voxels passed the reliability test ({how}); "
                "consider correction=fdr, a higher alpha, selection 'all' or a mask")
    return None


def reliability_test(z: np.ndarray, alpha: float, exclude: np.ndarray | None = None,
                     correction: str = "bonferroni") -> dict:
    """One-sided one-sample t-test of Fisher z across segments, corrected over the tested voxels
    (Bonferroni, the paper's, or Benjamini-Hochberg FDR).

    z: (n_segments, V). Returns mask (V,), p (V,), threshold_p, n_tested; excluded voxels get p = 1.
    """
    from scipy import stats

    n_seg, n_vox = z.shape
    if n_seg < 2:
        raise CNError(f"reliability selection needs at least 2 training segments with 2 repeats, found {n_seg}; use selection 'all' or a mask")
    tested = np.ones(n_vox, dtype=bool) if exclude is None else ~exclude
    p = np.ones(n_vox)
    if tested.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            res = stats.ttest_1samp(z[:, tested], 0.0, axis=0, alternative="greater")
        p[tested] = np.nan_to_num(res.pvalue, nan=1.0)
    n_tested = int(tested.sum())
    if correction == "fdr":
        threshold = fdr_threshold(p[tested], alpha)
        passed = (p <= threshold) & tested & (threshold > 0)
    else:
        threshold = alpha / max(n_tested, 1)
        passed = (p < threshold) & tested
    return {"mask": passed, "p": p, "threshold_p": threshold, "n_tested": n_tested}


def select_voxels(
    selection: VoxelSelection,
    n_voxels: int,
    *,
    z: np.ndarray | None = None,
    dead: np.ndarray | None = None,
    existing_mask=None,
) -> tuple[np.ndarray, dict]:
    """Choose the subject's mask. z: (n_segments, V) Fisher z (needed for reliability); dead: (V,).

    With `existing_mask` (a store's mask) the same selection is used; an explicit selection
    ('mask' or 'all') that differs from it is refused with both hashes.
    """
    info: dict = {"method": selection.method}
    if selection.method == "mask":
        explicit = as_mask(selection.mask_path, n_voxels, "selection")
    elif selection.method == "all":
        explicit = np.ones(n_voxels, dtype=bool)
    else:
        explicit = None
    if existing_mask is not None:
        existing = as_mask(existing_mask, n_voxels, "existing mask")
        if explicit is not None and not np.array_equal(explicit, existing):
            raise CNError(
                f"the store uses voxel mask {mask_hash(existing)} but selection {selection.method!r} "
                f"gives mask {mask_hash(explicit)}; ingest with the store's mask or start a new store"
            )
        info["method"] = f"existing ({selection.method})"
        return existing, info
    if explicit is not None:
        return explicit, info
    if z is None:
        raise CNError("reliability selection needs two repeats of the training data; use selection 'all' or a mask")
    res = reliability_test(z, selection.alpha, exclude=dead, correction=selection.correction)
    how = f"alpha {selection.alpha}, {selection.correction} over {res['n_tested']}"
    if not res["mask"].any():
        raise CNError(f"no voxel passed the reliability test ({how}); raise alpha, use correction=fdr, or selection 'all' or a mask")
    info.update(alpha=selection.alpha, correction=selection.correction, threshold_p=res["threshold_p"],
                n_tested=res["n_tested"])
    warning = low_survival_warning(int(res["mask"].sum()), res["n_tested"], how)
    if warning:
        info["warning"] = warning
    return res["mask"], info


def segment_reliability(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Fisher z of the repeat correlation for each segment. pairs of (n_vol, V) -> (n_segments, V)."""
    return np.stack([fisher_z(repeat_correlation(a, b)) for a, b in pairs])
