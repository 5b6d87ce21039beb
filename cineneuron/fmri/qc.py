"""Quality control of one subject's ingested fMRI: a plain dict, and a printable summary of it."""

from __future__ import annotations

import numpy as np


def _pct(values: np.ndarray | None, q: float) -> float | None:
    if values is None or values.size == 0:
        return None
    return float(np.percentile(values, q))


def subject_qc(
    *,
    source: str,
    subject,
    mask: np.ndarray,
    mask_hash: str,
    selection: dict,
    reliability_all: np.ndarray | None,
    constant: np.ndarray,
    nan: np.ndarray,
    n_samples: dict[str, int],
    extra: dict | None = None,
) -> dict:
    """QC numbers. reliability_all: (n_source,) mean repeat correlation (tanh of mean Fisher z);
    constant/nan: (n_source,) bool, voxels constant or missing (all NaN) in at least one run.
    """
    rel_sel = reliability_all[mask] if reliability_all is not None else None
    dead = constant | nan
    qc = {
        "source": source,
        "subject": subject,
        "n_source_voxels": int(mask.size),
        "n_voxels": int(mask.sum()),
        "mask_hash": mask_hash,
        "selection": selection,
        "reliability_median": _pct(rel_sel, 50),
        "reliability_p90": _pct(rel_sel, 90),
        "reliability_median_all": _pct(reliability_all, 50),
        "n_constant": int(constant.sum()),
        "n_nan": int((nan & ~constant).sum()),
        "n_dropped_constant_or_nan": int((dead & ~mask).sum()),
        "n_selected_constant_or_nan": int((dead & mask).sum()),
        "n_samples": dict(n_samples),
        "warnings": [],
    }
    qc.update(extra or {})
    return qc


def format_qc(qc: dict) -> str:
    """A few human lines for `cn ingest` to print."""

    def num(x):
        return "n/a" if x is None else f"{x:.3f}"

    samples = ", ".join(f"{k} {v}" for k, v in qc.get("n_samples", {}).items())
    lines = [
        f"{qc['source']} subject {qc['subject']}: {qc['n_voxels']} of {qc['n_source_voxels']} voxels "
        f"(selection {qc['selection'].get('method')}, mask {qc['mask_hash']})",
        f"  test-retest reliability of selected voxels: median {num(qc['reliability_median'])}, "
        f"90th percentile {num(qc['reliability_p90'])}",
        f"  constant voxels {qc['n_constant']}, NaN voxels {qc['n_nan']}, "
        f"dropped as constant/NaN {qc['n_dropped_constant_or_nan']}",
        f"  samples: {samples}",
    ]
    lines += [f"  warning: {w}" for w in qc.get("warnings", [])]
    return "\n".join(lines)
