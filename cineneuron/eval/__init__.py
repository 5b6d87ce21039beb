"""Evaluation: metrics as pure functions, evaluation-model loaders, and the report writer.

Modules (DESIGN section 7):

- `retrieval`: forward/backward top-1 among 300, as in MindEye2/NeuroClips.
- `semantic`: n-way top-k accuracy (peer-compatible and strict) and label-based accuracy.
- `frames`: CLIP-pcc, DTC, SSIM and PSNR.
- `motion`: optical-flow EPE (RAFT or Farnebäck) and Dynamic Degree.
- `models`: VideoMAE, ImageNet ViT, OpenCLIP, DINOv2 and RAFT from local paths.
- `report`: metrics.json, metrics.md, PNG plots, grid.mp4 and the place-against-the-paper table.

Every metric returns a plain dict with at least ``value`` and ``variant`` (what exactly was
computed), so results from different metrics can be written by one report writer. Nothing here
imports torch at module level; model code imports it inside functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_numpy", "summarize"]


def as_numpy(x, dtype=np.float64) -> np.ndarray:
    """A numpy array from a numpy array, list or torch tensor (duck-typed, so torch is not imported)."""
    if hasattr(x, "detach"):  # torch tensor; numpy has no bfloat16, so widen that one
        x = x.detach().cpu()
        x = (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()
    arr = np.asarray(x)
    return arr if dtype is None else arr.astype(dtype, copy=False)


def summarize(values, *, variant: str, **meta) -> dict:
    """Mean, standard deviation and count of per-item values, plus the variant and any metadata.

    `std` is the standard deviation across items (ddof=0); `sem` the standard error of the mean.
    Non-finite items (e.g. PSNR of identical frames is +inf) are kept in `per_item` and make the
    mean non-finite too, which is what the definition says.
    """
    vals = np.asarray(values, dtype=np.float64).ravel()  # (N,)
    n = int(vals.size)
    with np.errstate(invalid="ignore"):  # inf items give a nan std, which is right
        mean = float(vals.mean()) if n else float("nan")
        std = float(vals.std()) if n else float("nan")
    return {
        "value": mean,
        "std": std,
        "sem": std / np.sqrt(n) if n else float("nan"),
        "n": n,
        "variant": variant,
        **meta,
        "per_item": vals.tolist(),
    }
