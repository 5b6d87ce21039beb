"""Frame-level metrics: CLIP-pcc, DTC, SSIM and PSNR.

Frames are channel-last (T, H, W, 3): uint8 in [0, 255] or float in [0, 1]. Channel-first
(T, 3, H, W) input is moved to channel-last. SSIM and PSNR are computed on floats in [0, 1]
(data_range 1.0) at a stated resolution; when the reconstruction has another frame count than
the ground truth, its frames are resampled to the ground truth's count by uniform nearest
indices (`cineneuron.frames.resample`).

SSIM is scikit-image's `structural_similarity` with a Gaussian window (sigma 1.5, truncate
3.5, so an 11×11 window), no sample-covariance correction (Wang et al. 2004), K1 0.01, K2 0.03,
the mean over the valid region (borders of 5 pixels cropped), RGB channels averaged. PSNR is
10·log10(1 / MSE) per frame in numpy. Both are tested against scikit-image and torchmetrics.
"""

from __future__ import annotations

import numpy as np

from cineneuron.eval import as_numpy, summarize
from cineneuron.frames import resample, to_thwc, to_uint8  # noqa: F401  (re-exported for the metrics)

SSIM_SIGMA = 1.5
# ITU-R BT.601 luma, the weights PIL's "L" mode and OpenCV's RGB2GRAY use
LUMA_601 = np.array([0.299, 0.587, 0.114])


# ------------------------------------------------------------------ frame handling


def to_float01(frames) -> np.ndarray:
    """Float64 frames in [0, 1]: uint8 is divided by 255, floats are clipped to [0, 1]."""
    a = to_thwc(frames)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize (T, H, W, C) to size=(H', W'); cv2 INTER_AREA when shrinking, INTER_LINEAR when enlarging."""
    if size is None or tuple(frames.shape[1:3]) == tuple(size):
        return frames
    import cv2

    h, w = size
    interp = cv2.INTER_AREA if h * w < frames.shape[1] * frames.shape[2] else cv2.INTER_LINEAR
    out = [cv2.resize(f, (w, h), interpolation=interp) for f in frames]
    return np.stack([o[..., None] if o.ndim == 2 else o for o in out])  # (T, H', W', C)


def to_gray(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of (T, H, W, 3) floats → (T, H, W, 1)."""
    return (frames @ LUMA_601)[..., None]


def _pair(gt, recon, resolution, color) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Ground truth and reconstruction as floats in [0, 1] at one resolution and frame count."""
    if color not in ("rgb", "gray"):
        raise ValueError("color must be 'rgb' or 'gray'")
    g, r = to_float01(gt), to_float01(recon)
    size = tuple(resolution) if resolution is not None else tuple(g.shape[1:3])
    g, r = resize_frames(g, size), resize_frames(resample(r, len(g)), size)
    if color == "gray":
        g, r = to_gray(g), to_gray(r)
    return g, r, size


# ------------------------------------------------------------------ SSIM and PSNR


def ssim_frames(gt, recon, *, resolution: tuple[int, int] | None = None, color: str = "rgb") -> np.ndarray:
    """Per-frame SSIM (T,) of a reconstruction against its ground truth (scikit-image, see module doc).

    resolution: (H, W) both are resized to (default: the ground truth's own size).
    color: "rgb" (per-channel SSIM averaged) or "gray" (BT.601 luma). Frames must be ≥ 11 px.
    """
    from skimage.metrics import structural_similarity

    g, r, _ = _pair(gt, recon, resolution, color)
    return np.array([
        structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                              sigma=SSIM_SIGMA, use_sample_covariance=False)
        for a, b in zip(g, r)
    ])


def psnr_frames(gt, recon, *, resolution: tuple[int, int] | None = None, color: str = "rgb") -> np.ndarray:
    """Per-frame PSNR in dB (T,): 10·log10(1 / MSE), MSE over pixels and channels, data in [0, 1].

    Identical frames give +inf. Same resolution and colour handling as `ssim_frames`.
    """
    g, r, _ = _pair(gt, recon, resolution, color)
    mse = ((g - r) ** 2).reshape(len(g), -1).mean(1)  # (T,)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def _per_video(fn, gts, recons, name, resolution, color) -> dict:
    """Mean over each video's frames, then `summarize` over videos; records the resolution used."""
    per = [fn(g, r, resolution=resolution, color=color).mean() for g, r in zip(gts, recons)]
    res = tuple(resolution) if resolution is not None else tuple(to_thwc(gts[0]).shape[1:3])
    variant = f"{name}, {color}, {res[0]}x{res[1]}, per frame, mean per video then over videos"
    return summarize(per, variant=variant, resolution=list(res), color=color)


def ssim(gts, recons, *, resolution=None, color="rgb") -> dict:
    """SSIM over a list of videos: per-frame (`ssim_frames`), per-video mean, mean over videos.

    The Gaussian-window SSIM of Wang et al. 2004 as in scikit-image; MinD-Video and NeuroClips
    report per-frame SSIM averaged the same way (their window and resolution may differ: the
    variant string says which this is).
    """
    return _per_video(ssim_frames, gts, recons, "ssim gaussian sigma=1.5", resolution, color)


def psnr(gts, recons, *, resolution=None, color="rgb") -> dict:
    """PSNR (dB, data range 1) over a list of videos, averaged like `ssim`."""
    return _per_video(psnr_frames, gts, recons, "psnr", resolution, color)


# ------------------------------------------------------------------ CLIP-pcc and DTC


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def clip_pcc_features(features, pairs: str = "adjacent") -> float:
    """CLIP-pcc of one video from its per-frame CLIP image embeddings (T, D).

    pairs "adjacent": mean cosine of frames t and t+1 (NeuroClips' definition, "the average
    cosine similarity between all pairs of adjacent video frames"); "all": mean cosine over all
    pairs i < j. A static video gives 1.
    """
    f = _unit(as_numpy(features))  # (T, D)
    if len(f) < 2:
        raise ValueError("CLIP-pcc needs at least 2 frames")
    if pairs == "adjacent":
        return float((f[1:] * f[:-1]).sum(1).mean())
    if pairs == "all":
        i, j = np.triu_indices(len(f), k=1)
        return float((f @ f.T)[i, j].mean())
    raise ValueError("pairs must be 'adjacent' or 'all'")


def dtc_features(features) -> dict:
    """DTC of one video from per-frame DINOv2 features (T, D), as VBench's subject consistency.

    For t ≥ 1: (max(0, cos(f_t, f_{t−1})) + max(0, cos(f_t, f_0))) / 2, averaged over t. Also
    returns the two parts. A static video gives 1.
    """
    f = _unit(as_numpy(features))  # (T, D)
    if len(f) < 2:
        raise ValueError("DTC needs at least 2 frames")
    prev = np.clip((f[1:] * f[:-1]).sum(1), 0, None)  # (T-1,)
    first = np.clip(f[1:] @ f[0], 0, None)  # (T-1,)
    return {"value": float(((prev + first) / 2).mean()), "to_previous": float(prev.mean()),
            "to_first": float(first.mean())}


def clip_pcc(features_per_video, pairs: str = "adjacent") -> dict:
    """CLIP-pcc over videos: a list of (T, D) feature arrays → summary (mean, std over videos)."""
    per = [clip_pcc_features(f, pairs) for f in features_per_video]
    return summarize(per, variant=f"clip-pcc {pairs} pairs, cosine of CLIP image embeddings")


def dtc(features_per_video) -> dict:
    """DTC over videos (list of (T, D) DINOv2 features), with both parts averaged too."""
    parts = [dtc_features(f) for f in features_per_video]
    variant = "dtc vbench: mean of cos to previous and to first, clamped at 0"
    out = summarize([p["value"] for p in parts], variant=variant)
    out["to_previous"] = float(np.mean([p["to_previous"] for p in parts]))
    out["to_first"] = float(np.mean([p["to_first"] for p in parts]))
    return out


def embed_videos(videos, embedder) -> list[np.ndarray]:
    """Per-frame embeddings [(T, D)] of each video with an embedder from `cineneuron.eval.models`."""
    return [embedder.embed(v) for v in videos]


def clip_pcc_videos(videos, clip_embedder, pairs: str = "adjacent") -> dict:
    """CLIP-pcc from frames: embed every frame with the CLIP model, then `clip_pcc`."""
    return clip_pcc(embed_videos(videos, clip_embedder), pairs)


def dtc_videos(videos, dino_embedder) -> dict:
    """DTC from frames: DINOv2 `pooler_output` of every frame, then `dtc`."""
    return dtc(embed_videos(videos, dino_embedder))
