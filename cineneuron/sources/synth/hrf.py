"""Haemodynamics: canonical double-gamma HRF, convolution at frame rate, sampling at the TR."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.special import gammaln

HRF_LENGTH_S = 32.0
UNDERSHOOT_PEAK_S = 15.0
UNDERSHOOT_RATIO = 1.0 / 6.0


def _gamma_pdf(t: np.ndarray, shape: float) -> np.ndarray:
    out = np.zeros_like(t)
    pos = t > 0
    out[pos] = np.exp((shape - 1) * np.log(t[pos]) - t[pos] - gammaln(shape))
    return out


def double_gamma(dt: float, peak_s: float = 5.0, length_s: float = HRF_LENGTH_S) -> np.ndarray:
    """SPM-style canonical HRF sampled every dt seconds: a gamma peaking at peak_s minus 1/6 of a
    gamma peaking at 15 s (the undershoot). Normalised to unit sum, so a sustained neural
    response of 1 gives a BOLD plateau of 1."""
    t = np.arange(0.0, length_s, dt) + dt / 2  # (K,) centre of each step
    h = _gamma_pdf(t, peak_s + 1.0) - UNDERSHOOT_RATIO * _gamma_pdf(t, UNDERSHOOT_PEAK_S + 1.0)
    return h / h.sum()


def convolve(neural: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Causal convolution along time: (T, V) * (K,) -> (T, V)."""
    return fftconvolve(neural, kernel[:, None], axes=0)[: neural.shape[0]]


def n_volumes(duration_s: float, tr: float) -> int:
    """Volumes in a run covering duration_s (240 for 480 s at TR 2 s; 600 at TR 0.8 s)."""
    return int(np.floor(duration_s / tr + 1e-6))


def tr_average_matrix(n_frames: int, fps: float, tr: float, n_vol: int) -> np.ndarray:
    """(n_vol, n_frames) weights: volume j is the mean of the signal over [j*TR, (j+1)*TR),
    each frame weighted by how much of its interval falls inside (TRs need not be a whole
    number of frames, e.g. TR 0.8 s at 8 fps)."""
    f0 = np.arange(n_frames) / fps  # frame start times
    v0 = np.arange(n_vol)[:, None] * tr
    overlap = np.clip(np.minimum(f0 + 1 / fps, v0 + tr) - np.maximum(f0, v0), 0, None)  # (n_vol, T)
    return (overlap / tr).astype(np.float32)
