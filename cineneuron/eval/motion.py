"""Motion metrics: optical-flow end-point error (EPE) and Dynamic Degree (DD).

Flow fields are (T−1, H, W, 2) float arrays, (dx, dy) in pixels of the frames they were
computed on, from frame t to frame t+1: frame_{t+1}(x + dx, y + dy) ≈ frame_t(x, y).

Estimators (any object with `.flow(frames) -> (T−1, H, W, 2)` and a `.name`):
- `Farneback`: OpenCV's dense Farnebäck flow, needs no weights (the fallback);
- `cineneuron.eval.models.RaftFlow`: torchvision RAFT with a local state dict.

EPE: the ground truth and the reconstruction are brought to one resolution and frame count,
the same estimator computes both flows, and EPE is the mean over pixels and frame pairs of
‖flow_recon − flow_gt‖₂, in pixels at that resolution. (With no ground-truth flow labels for
natural video, the ground truth's estimated flow stands in for the true flow.)

Dynamic Degree follows VBench's `dynamic_degree`: per frame pair the score is the mean of the
largest 5% of flow magnitudes; a pair "moves" when the score exceeds 6 · min(H, W) / 256
pixels. DD of a video is the fraction of pairs that move (continuous, as the issue asks);
`is_dynamic` is VBench's binary verdict, at least round(4 · T / 16) moving pairs. VBench samples
frames at 8 fps and runs RAFT with 20 iterations: feed frames at that rate to match it.
"""

from __future__ import annotations

import numpy as np

from cineneuron.eval import as_numpy, summarize
from cineneuron.eval.frames import resize_frames, to_float01
from cineneuron.frames import resample, to_uint8

TOP_FRACTION = 0.05  # VBench: mean of the top 5% flow magnitudes per pair
THRESHOLD_PER_256 = 6.0  # VBench: 6 px at a short side of 256, scaled with the short side


class Farneback:
    """OpenCV Farnebäck dense flow on BT.601 grey frames (no weights needed).

    Parameters are OpenCV's usual ones (pyramid 0.5 × 3 levels, window 15, 3 iterations,
    poly_n 5, poly_sigma 1.2).
    """

    name = "farneback"

    def __init__(self, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2):
        self.params = dict(pyr_scale=pyr_scale, levels=levels, winsize=winsize, iterations=iterations,
                           poly_n=poly_n, poly_sigma=poly_sigma, flags=0)

    def flow(self, frames) -> np.ndarray:
        """(T, H, W, 3) frames → (T−1, H, W, 2) flow in pixels."""
        import cv2

        u8 = to_uint8(frames)  # (T, H, W, C)
        if len(u8) < 2:
            raise ValueError("optical flow needs at least 2 frames")
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.shape[-1] == 3 else f[..., 0] for f in u8]
        return np.stack([cv2.calcOpticalFlowFarneback(a, b, None, **self.params)
                         for a, b in zip(gray[:-1], gray[1:])]).astype(np.float64)


def farneback_flow(frames, **params) -> np.ndarray:
    """Functional form of `Farneback(**params).flow(frames)`."""
    return Farneback(**params).flow(frames)


def epe(flow_pred, flow_gt) -> float:
    """Mean end-point error: mean over pairs and pixels of ‖flow_pred − flow_gt‖₂ (T−1, H, W, 2)."""
    a, b = as_numpy(flow_pred), as_numpy(flow_gt)
    if a.shape != b.shape:
        raise ValueError(f"flows differ in shape: {a.shape} vs {b.shape}")
    return float(np.linalg.norm(a - b, axis=-1).mean())


def _prepare(gt, recon, resolution):
    """Both videos as [0, 1] floats at one resolution and the ground truth's frame count."""
    g, r = to_float01(gt), to_float01(recon)
    size = tuple(resolution) if resolution is not None else tuple(g.shape[1:3])
    return resize_frames(g, size), resize_frames(resample(r, len(g)), size), size


def epe_video(gt, recon, estimator=None, *, resolution=None) -> float:
    """EPE of one reconstruction against its ground truth, both flows from `estimator`."""
    est = estimator or Farneback()
    g, r, _ = _prepare(gt, recon, resolution)
    return epe(est.flow(r), est.flow(g))


def epe_videos(gts, recons, estimator=None, *, resolution=None) -> dict:
    """EPE over videos (mean, std over videos), with the estimator and resolution in the variant."""
    est = estimator or Farneback()
    per = [epe_video(g, r, est, resolution=resolution) for g, r in zip(gts, recons)]
    res = tuple(resolution) if resolution is not None else tuple(to_float01(gts[0]).shape[1:3])
    return summarize(per, variant=f"epe vs gt flow, {est.name}, {res[0]}x{res[1]}, px",
                     estimator=est.name, resolution=list(res))


# ------------------------------------------------------------------ Dynamic Degree


def pair_motion_scores(flow, stat: str = "top5") -> np.ndarray:
    """Per-pair motion score (T−1,): "top5" the mean of the top 5% magnitudes (VBench), "mean" the mean."""
    mag = np.linalg.norm(as_numpy(flow), axis=-1).reshape(len(flow), -1)  # (T-1, H*W)
    if stat == "mean":
        return mag.mean(1)
    if stat != "top5":
        raise ValueError("stat must be 'top5' or 'mean'")
    k = max(1, int(mag.shape[1] * TOP_FRACTION))
    return np.sort(mag, axis=1)[:, -k:].mean(1)


def dd_threshold(height: int, width: int) -> float:
    """VBench's motion threshold in pixels: 6 · min(H, W) / 256."""
    return THRESHOLD_PER_256 * min(height, width) / 256.0


def dynamic_degree_flow(flow, *, stat: str = "top5", threshold: float | None = None) -> dict:
    """DD of one video from its flow (T−1, H, W, 2).

    value: fraction of frame pairs whose score exceeds the threshold (default `dd_threshold`);
    is_dynamic: VBench's verdict, at least round(4 · T / 16) moving pairs (T = frames).
    """
    f = as_numpy(flow)
    thr = dd_threshold(*f.shape[1:3]) if threshold is None else threshold
    moving = pair_motion_scores(f, stat) > thr  # (T-1,)
    need = round(4 * (len(f) + 1) / 16.0)
    return {"value": float(moving.mean()), "is_dynamic": bool(moving.sum() >= need), "threshold": thr}


def dynamic_degree(flows_per_video, *, stat: str = "top5", threshold: float | None = None) -> dict:
    """DD over videos: mean fraction of moving pairs, plus VBench's fraction of dynamic videos."""
    parts = [dynamic_degree_flow(f, stat=stat, threshold=threshold) for f in flows_per_video]
    out = summarize([p["value"] for p in parts],
                    variant=f"dynamic degree: fraction of pairs with {stat} flow > 6*min(H,W)/256 px"
                    if threshold is None else f"dynamic degree: fraction of pairs with {stat} flow > {threshold} px")
    out["vbench_dynamic_fraction"] = float(np.mean([p["is_dynamic"] for p in parts]))
    return out


def dynamic_degree_gap(gts, recons, estimator=None, *, resolution=None, stat: str = "top5") -> dict:
    """DD of the reconstructions, of the ground truths, and the mean per-video |DD(recon) − DD(gt)|."""
    est = estimator or Farneback()
    pairs = [_prepare(g, r, resolution) for g, r in zip(gts, recons)]
    f_gt = [est.flow(g) for g, _, _ in pairs]
    f_rc = [est.flow(r) for _, r, _ in pairs]
    dd_gt, dd_rc = dynamic_degree(f_gt, stat=stat), dynamic_degree(f_rc, stat=stat)
    gap = np.abs(np.array(dd_rc["per_item"]) - np.array(dd_gt["per_item"]))  # (N,)
    res = pairs[0][2]
    return {
        "recon": dd_rc,
        "gt": dd_gt,
        "gap": summarize(gap, variant=f"|DD(recon) - DD(gt)| per video, {est.name}, {res[0]}x{res[1]}"),
    }
