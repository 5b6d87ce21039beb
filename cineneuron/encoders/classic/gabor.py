"""Gabor and motion energy with pymoten's filters, computed for many clips at once.

pymoten builds each filter again for every call and loops over filters in Python, which is
about 0.25 s per 16-frame clip. Here the filter bank is built once (with pymoten's own
`mk_3d_gabor_batched`, same masks) and a batch of clips is projected with one matrix product.
`filter_energy` equals pymoten's `project_stimulus(..., output_nonlinearity=identity)` per clip
(checked in the tests).

Numpy only at import; pymoten is imported when a bank is built.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

# pymoten's threshold on |sin| + |cos| below which a pixel is outside a filter.
MASK_LIMIT = 0.001


@dataclass(frozen=True)
class GaborBank:
    """A pyramid's filters as arrays, built once."""

    spatial: np.ndarray  # (P, 2F) float32: masked spatial Gabors, sin columns then cos columns
    temporal_sin: np.ndarray  # (F, W) float32
    temporal_cos: np.ndarray  # (F, W) float32
    norm: np.ndarray  # (F,) float32: size of each filter, fixes the feature scale without data
    temporal_freq: np.ndarray  # (F,) Hz, 0 for static filters
    vhsize: tuple[int, int]

    @property
    def n_filters(self) -> int:
        return self.temporal_sin.shape[0]

    @property
    def width(self) -> int:
        """Temporal width of the filters in frames (1 for static Gabors)."""
        return self.temporal_sin.shape[1]


def static_pyramid(size: int, spatial_frequencies, orientations, filter_spacing: float):
    """A pyramid of static Gabors (temporal frequency 0, one frame wide).

    Same fixed parameters as pymoten's StimulusStaticGaborPyramid, without needing a stimulus.
    """
    import moten

    return moten.pyramids.MotionEnergyPyramid(
        stimulus_vhsize=(size, size),
        stimulus_fps=1,
        temporal_frequencies=[0],
        spatial_frequencies=list(spatial_frequencies),
        spatial_directions=list(orientations),
        filter_spacing=filter_spacing,
        max_temp_env=float("inf"),
        filter_temporal_width=1,
    )


def motion_pyramid(size: int, fps: int, spatial_frequencies, directions, temporal_frequencies,
                   filter_spacing: float):
    """pymoten's motion-energy pyramid for square frames at `fps` (default filter width 2/3 s)."""
    import moten

    return moten.get_default_pyramid(
        vhsize=(size, size),
        fps=fps,
        temporal_frequencies=list(temporal_frequencies),
        spatial_frequencies=list(spatial_frequencies),
        spatial_directions=list(directions),
        filter_spacing=filter_spacing,
    )


def make_bank(pyramid) -> GaborBank:
    """Build all of a pyramid's filters as arrays (pymoten's batched builder, numpy out)."""
    from moten.backend import get_backend
    from moten.core import mk_3d_gabor_batched

    to_np = get_backend().to_numpy  # another global pymoten backend may hand back tensors
    vhsize = tuple(int(v) for v in pyramid.definition.stimulus_vhsize)
    sg_sin, sg_cos, tg_sin, tg_cos = (
        np.asarray(to_np(a), dtype=np.float64) for a in mk_3d_gabor_batched(vhsize, pyramid.filters)
    )  # (F, P), (F, P), (F, W), (F, W)
    mask = (np.abs(sg_sin) + np.abs(sg_cos)) > MASK_LIMIT  # (F, P)
    sg_sin, sg_cos = sg_sin * mask, sg_cos * mask
    # Root-mean-square norm of the quadrature pair: a flat-spectrum input gives every filter
    # the same energy, so big low-frequency filters do not dominate after the projection.
    s_norm = np.sqrt((np.square(sg_sin).sum(1) + np.square(sg_cos).sum(1)) / 2)  # (F,)
    t_norm = np.sqrt((np.square(tg_sin).sum(1) + np.square(tg_cos).sum(1)) / 2)  # (F,)
    return GaborBank(
        spatial=np.concatenate([sg_sin, sg_cos], 0).T.astype(np.float32),  # (P, 2F)
        temporal_sin=tg_sin.astype(np.float32),
        temporal_cos=tg_cos.astype(np.float32),
        norm=(s_norm * t_norm).astype(np.float32),
        temporal_freq=np.asarray(pyramid.parameters["temporal_freq"], dtype=np.float32),
        vhsize=vhsize,
    )


def _srgb_to_linear_lut() -> np.ndarray:
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.where(v < 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)  # (256,)


_LINEAR = _srgb_to_linear_lut()
_Y_FROM_RGB = np.array([0.212671, 0.715160, 0.072169])  # sRGB (D65) -> CIE Y, as pymoten


def luminance(frames: np.ndarray) -> np.ndarray:
    """CIE L* (0-100) of uint8 RGB frames (..., H, W, 3) -> (..., H, W) float32.

    The same numbers as `moten.io.imagearray2luminance` (which computes all of L*a*b* in
    float64, one image at a time), but only the L* channel, through a lookup table.
    """
    y = _LINEAR[frames] @ _Y_FROM_RGB  # (..., H, W) float64
    f = np.where(y < 0.008856, y * 7.787 + 4.0 / 29.0, np.cbrt(y))
    return (116.0 * f - 16.0).astype(np.float32)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(B, T, H, W, 3) uint8 -> (B, T, size, size, 3), with pymoten's resampling filter."""
    from PIL import Image

    b, t = frames.shape[:2]
    flat = frames.reshape(b * t, *frames.shape[2:])
    out = [np.asarray(Image.fromarray(f).resize((size, size), Image.LANCZOS)) for f in flat]
    return np.stack(out).reshape(b, t, size, size, 3)


def _shift_time(x: np.ndarray, num: int) -> np.ndarray:
    """out[:, t] = x[:, t - num] with zeros where that is outside the clip. x: (B, T, F)."""
    if num == 0:
        return x
    out = np.zeros_like(x)
    if num > 0:
        out[:, num:] = x[:, :-num]
    else:
        out[:, :num] = x[:, -num:]
    return out


def filter_energy(bank: GaborBank, lum: np.ndarray) -> np.ndarray:
    """Quadrature energy of every filter at every frame, each clip on its own.

    lum: (B, T, H, W) luminance -> (B, T, F) float32. The temporal filter is applied within a
    clip only (zeros beyond its ends), exactly as pymoten does for one stimulus.
    """
    b, t, h, w = lum.shape
    f = bank.n_filters
    spatial = lum.reshape(b * t, h * w) @ bank.spatial  # (B*T, 2F)
    s_sin = spatial[:, :f].reshape(b, t, f)  # (B, T, F)
    s_cos = spatial[:, f:].reshape(b, t, f)  # (B, T, F)
    out_sin = np.zeros_like(s_sin)
    out_cos = np.zeros_like(s_cos)
    centre = int(math.ceil(bank.width / 2.0))
    for d in range(bank.width):  # delays, as pymoten's dotdelay_frames
        tg_s, tg_c = bank.temporal_sin[:, d], bank.temporal_cos[:, d]  # (F,)
        out_sin += _shift_time(s_sin * tg_c + s_cos * tg_s, d - centre + 1)
        out_cos += _shift_time(s_cos * tg_c - s_sin * tg_s, d - centre + 1)
    return np.sqrt(np.square(out_sin) + np.square(out_cos))  # (B, T, F)


def valid_frames(n_frames: int, width: int) -> slice:
    """Frames whose whole temporal filter lies inside the clip (all frames if none does)."""
    centre = int(math.ceil(width / 2.0))
    first, last = width - centre, n_frames - centre
    return slice(first, last + 1) if last >= first else slice(0, n_frames)


def compress(energy: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """log(1 + energy / filter size): fixed per-feature scaling, no statistics of the data."""
    return np.log1p(energy / norm)  # (..., F)


def pink_noise(n: int, size: int, seed: int = 0, mean: float = 50.0, contrast: float = 20.0) -> np.ndarray:
    """n synthetic luminance images (n, size, size) with a natural 1/f amplitude spectrum.

    Mean and RMS contrast are those of typical video frames in L* units (0-100).
    """
    rng = np.random.RandomState(seed)
    f = np.fft.fftfreq(size)
    radius = np.hypot(f[:, None], f[None, :])  # (size, size)
    radius[0, 0] = 1.0
    spec = (rng.standard_normal((n, size, size)) + 1j * rng.standard_normal((n, size, size))) / radius
    im = np.real(np.fft.ifft2(spec))  # (n, size, size)
    im = (im - im.mean((1, 2), keepdims=True)) / im.std((1, 2), keepdims=True)
    return np.clip(im * contrast + mean, 0.0, 100.0).astype(np.float32)


def reference_profile(bank: GaborBank, n: int = 32) -> np.ndarray:
    """(F,) mean compressed features of still 1/f-noise images: what any natural image gives.

    Subtracted from every feature vector before the projection. Without it all vectors share
    this profile and every pair of clips has a cosine near 0.9; with it, about 0.3-0.6. It is
    computed from synthetic images only, so it never depends on the data being encoded.
    """
    size = bank.vhsize[0]
    still = np.repeat(pink_noise(n, size)[:, None], bank.width, 1)  # (n, W, size, size)
    energy = filter_energy(bank, still)[:, valid_frames(bank.width, bank.width)]  # (n, 1, F)
    return compress(energy[:, 0], bank.norm).mean(0)  # (F,)


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance across features within each vector (not across samples).

    Removes the vector's overall level and scale (global contrast), so vectors differ by where
    and in which bands the energy lies. A flat vector maps to zeros; the projection's bias row
    still gives it a non-zero output.
    """
    mu = x.mean(-1, keepdims=True)
    sd = x.std(-1, keepdims=True)
    return (x - mu) / np.maximum(sd, 1e-6)


def projection_matrix(seed: int, in_dim: int, dim: int) -> np.ndarray:
    """Gaussian random projection (in_dim + 1, dim), N(0, 1/dim) entries (distances kept).

    The last row takes a constant 1 input, so even a blank frame gets a non-zero vector.
    Uses numpy's legacy RandomState, whose stream numpy keeps fixed across versions, so the
    same seed gives the same matrix later; its hash is stored to prove it.
    """
    rng = np.random.RandomState(seed)
    return (rng.standard_normal((in_dim + 1, dim)) / math.sqrt(dim)).astype(np.float32)


def matrix_hash(m: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(m, dtype="<f4").tobytes()).hexdigest()[:16]


def project(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., in_dim) features -> (..., dim) float32 through the fixed projection."""
    lead = x.shape[:-1]
    z = standardise(x.reshape(-1, x.shape[-1]))  # (N, in_dim): 2-D, numpy's batched 3-D matmul is ~10x slower
    z = np.concatenate([z, np.ones((len(z), 1), z.dtype)], 1)  # (N, in_dim + 1)
    return (z @ matrix).astype(np.float32).reshape(*lead, matrix.shape[1])
