"""Simulated subjects: a population-receptive-field voxel model driven by stimulus features.

Each voxel has a Gaussian receptive field (x, y, size in fractions of the frame) and a type:

- silent: no stimulus drive at all, pure noise (a realistic share of any cortical mask);
- early: local contrast energy plus transients and a little motion (V1-V3-like, small RFs that
  grow with eccentricity);
- motion: motion energy in one preferred direction (MT-like, larger RFs);
- face_body / animal / vehicle: coverage of its RF by that category's objects (large central RFs);
- place: indoor vs outdoor scene (PPA-like; prefers one of the two);
- object: the ventral stream's distributed object code (LO/VTC-like, large central RFs): each
  voxel responds to object coverage times a linear mix of the covering object's attributes
  (ventral.py), with its own random direction in attribute space, rectified. Codes overlap, so
  a kind never seen in training still evokes its own pattern.

Every responsive voxel also gets small weights on other channels (mixed selectivity). The
neural response at frame rate is a compressive power of the weighted, RF-pooled drive (the CSS
pRF model), convolved with the voxel's own double-gamma HRF (peak 5 +- 0.35 s), averaged over each
TR, and given slow drift, AR(1) noise and a noise component shared by all voxels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cineneuron.sources.synth import hrf
from cineneuron.sources.synth.data import category_names, world
from cineneuron.sources.synth.features import (CH_CATEGORY, CH_CONTRAST, CH_MOTION, CH_OBJECT, CH_TRANSIENT, GRID,
                                                N_DIRECTIONS)
from cineneuron.sources.synth.ventral import attribute_names

TYPES = ("silent", "early", "motion", "face_body", "animal", "vehicle", "place", "object")
WEIGHTS = (("contrast", "transient", "motion", "face_body", "animal", "vehicle", "indoor", "outdoor", "object")
           + tuple(f"attr_{a}" for a in attribute_names()))
W_OBJECT = WEIGHTS.index("object")  # then one column per attribute
CHUNK = 2048  # voxels simulated at once: bounds memory at (frames x CHUNK) floats


@dataclass
class Subject:
    vtype: np.ndarray  # (V,) int8, index into TYPES
    rf_x: np.ndarray  # (V,) float32, 0..1 across the frame
    rf_y: np.ndarray  # (V,) float32, 0..1 down the frame
    rf_size: np.ndarray  # (V,) float32, Gaussian sigma as a fraction of the frame
    motion_dir: np.ndarray  # (V,) int8, index into features.DIRECTIONS (k * 45 degrees, 0 = right)
    weights: np.ndarray  # (V, len(WEIGHTS)) float32 tuning weights
    exponent: np.ndarray  # (V,) compressive exponent of the CSS nonlinearity
    hrf_peak: np.ndarray  # (V,) seconds
    snr: np.ndarray  # (V,) single-repeat signal sd / noise sd (0 for silent voxels)
    ar_phi: np.ndarray  # (V,) AR(1) coefficient of the noise at this TR
    global_beta: np.ndarray  # (V,) share of the noise common to all voxels
    drift_sd: np.ndarray  # (V,) drift amplitude relative to the noise sd

    @property
    def n_voxels(self) -> int:
        return len(self.vtype)

    @property
    def responsive(self) -> np.ndarray:
        return self.vtype != 0

    def arrays(self) -> dict[str, np.ndarray]:
        return asdict(self)


def _type_draw(rng, n: int) -> np.ndarray:
    mix = {k: v for k, v in world()["voxel_types"].items() if not k.startswith("_")}
    p = np.array([mix[t] for t in TYPES], float)
    return rng.choice(len(TYPES), size=n, p=p / p.sum()).astype(np.int8)


def make_subject(rng: np.random.Generator, n_voxels: int, snr: float, tr: float) -> Subject:
    """Draw one subject's voxels; different rngs give different RFs and tunings."""
    v = n_voxels
    vtype = _type_draw(rng, v)
    t = {name: vtype == i for i, name in enumerate(TYPES)}
    x, y = rng.uniform(0.02, 0.98, v), rng.uniform(0.02, 0.98, v)
    central = t["face_body"] | t["animal"] | t["vehicle"] | t["place"] | t["object"]
    x[central], y[central] = rng.uniform(0.3, 0.7, central.sum()), rng.uniform(0.3, 0.7, central.sum())
    ecc = np.hypot(x - 0.5, y - 0.5)
    size = (0.03 + 0.15 * ecc) * rng.uniform(0.7, 1.3, v)
    size[t["motion"]] = (0.08 + 0.25 * ecc[t["motion"]]) * rng.uniform(0.8, 1.2, t["motion"].sum())
    size[central] = rng.uniform(0.2, 0.4, central.sum())

    w = np.zeros((v, len(WEIGHTS)))
    col = {name: i for i, name in enumerate(WEIGHTS)}
    u = lambda lo, hi, m: rng.uniform(lo, hi, m.sum())
    resp = ~t["silent"]
    w[resp, col["contrast"]] = u(0.0, 0.15, resp)  # mixed selectivity: a little of everything
    w[resp, col["transient"]] = u(0.0, 0.15, resp)
    w[t["early"], col["contrast"]] = u(0.6, 1.0, t["early"])
    w[t["early"], col["transient"]] = u(0.2, 0.6, t["early"])
    w[t["early"], col["motion"]] = u(0.0, 0.3, t["early"])
    w[t["motion"], col["motion"]] = u(0.7, 1.0, t["motion"])
    w[t["motion"], col["transient"]] = u(0.2, 0.5, t["motion"])
    for cat in category_names():
        w[t[cat], col[cat]] = u(0.7, 1.0, t[cat])
        others = central & ~t[cat] & ~t["place"]
        w[others, col[cat]] = u(0.0, 0.15, others)
    indoor_pref = rng.random(v) < 0.5
    pl = t["place"]
    w[pl, col["indoor"]] = np.where(indoor_pref[pl], u(0.6, 1.0, pl), u(0.0, 0.3, pl))
    w[pl, col["outdoor"]] = np.where(indoor_pref[pl], u(0.0, 0.3, pl), u(0.6, 1.0, pl))

    _object_tuning(rng, w, t["object"])
    exponent = np.where(t["early"], rng.uniform(0.7, 1.0, v), rng.uniform(0.4, 0.8, v))
    peak = np.round(np.clip(rng.normal(5.0, 0.35, v), 4.2, 5.8) / 0.2) * 0.2  # few distinct HRFs
    vsnr = np.where(resp, snr * np.exp(rng.normal(0.0, 0.7, v)), 0.0)
    tau = rng.uniform(1.2, 3.0, v)  # noise autocorrelation time, seconds
    return Subject(
        vtype=vtype, rf_x=x.astype(np.float32), rf_y=y.astype(np.float32), rf_size=size.astype(np.float32),
        motion_dir=rng.integers(0, N_DIRECTIONS, v).astype(np.int8), weights=w.astype(np.float32),
        exponent=exponent.astype(np.float32), hrf_peak=peak.astype(np.float32), snr=vsnr.astype(np.float32),
        ar_phi=np.exp(-tr / tau).astype(np.float32), global_beta=rng.uniform(0.1, 0.4, v).astype(np.float32),
        drift_sd=rng.uniform(0.3, 1.0, v).astype(np.float32),
    )


def _object_tuning(rng, w: np.ndarray, obj: np.ndarray) -> None:
    """Object voxels: drive per unit coverage = b + sum_d u_d (a_d - 0.5), b ~ U(0.4, 0.8), u a
    random direction of norm ~1 (distributed, overlapping codes), written as a weight on coverage
    (b - 0.5 sum u) and one on each coverage x attribute channel (u). Negative drive rectifies."""
    n, d = int(obj.sum()), len(attribute_names())
    u = rng.normal(0.0, 1.0 / np.sqrt(d), (n, d)) * 1.5
    b = rng.uniform(0.4, 0.8, n)
    w[obj, W_OBJECT] = b - 0.5 * u.sum(1)
    w[obj, W_OBJECT + 1:W_OBJECT + 1 + d] = u


def rf_matrix(x: np.ndarray, y: np.ndarray, size: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(grid*grid, V) Gaussian RF weights over the feature grid's cell centres, columns sum to 1."""
    c = (np.arange(grid) + 0.5) / grid
    cy, cx = np.meshgrid(c, c, indexing="ij")  # (grid, grid), row-major like the features
    d2 = (cx.reshape(-1, 1) - x[None]) ** 2 + (cy.reshape(-1, 1) - y[None]) ** 2
    r = np.exp(-d2 / (2 * np.maximum(size[None], 0.5 / grid) ** 2))
    return (r / r.sum(0, keepdims=True)).astype(np.float32)


def channel_norms(features: list[np.ndarray]) -> np.ndarray:
    """Mean of each feature channel over all frames and cells (motion directions share one), so
    tuning weights act on comparable scales. Absent channels (a held-out category) get 1."""
    total = sum(f.sum(axis=(0, 2, 3), dtype=np.float64) for f in features)
    count = sum(f.shape[0] * f.shape[2] * f.shape[3] for f in features)
    mean = total / count
    mean[CH_MOTION:CH_MOTION + N_DIRECTIONS] = mean[CH_MOTION:CH_MOTION + N_DIRECTIONS].mean()
    # Coverage x attribute channels share the coverage's scale, so an attribute's weight means the
    # same whatever its value range (a rare one, wheels, is not blown up).
    mean[CH_OBJECT + 1:] = mean[CH_OBJECT]
    return np.where(mean > 1e-9, mean, 1.0).astype(np.float32)


def _drive(s: Subject, idx: np.ndarray, feats: np.ndarray, scene: np.ndarray) -> np.ndarray:
    """Weighted RF-pooled drive of voxels idx: feats (T, C, G*G) normalised, scene (T, 2) -> (T, n)."""
    r = rf_matrix(s.rf_x[idx], s.rf_y[idx], s.rf_size[idx])  # (G*G, n)
    w = s.weights[idx]  # (n, W)
    out = (feats[:, CH_CONTRAST] @ r) * w[:, 0] + (feats[:, CH_TRANSIENT] @ r) * w[:, 1]
    for k in range(N_DIRECTIONS):
        m = s.motion_dir[idx] == k
        if m.any() and w[m, 2].any():
            out[:, m] += (feats[:, CH_MOTION + k] @ r[:, m]) * w[m, 2]
    for j in range(len(category_names())):
        m = w[:, 3 + j] > 0
        if m.any():
            out[:, m] += (feats[:, CH_CATEGORY + j] @ r[:, m]) * w[m, 3 + j]
    for j in range(w.shape[1] - W_OBJECT):  # object coverage, then coverage x attribute
        m = w[:, W_OBJECT + j] != 0
        if m.any():
            out[:, m] += (feats[:, CH_OBJECT + j] @ r[:, m]) * w[m, W_OBJECT + j]
    return out + scene @ w[:, 6:8].T  # (T, n)


def clean_run(s: Subject, feats: np.ndarray, scene: np.ndarray, norms: np.ndarray,
              fps: float, tr: float, n_vol: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free BOLD of one run and the neural response averaged per TR (for checks).

    feats (T, C, G, G) of the run's frames, scene (T, 2) indoor/outdoor flags.
    Returns bold (n_vol, V) and neural (n_vol, V); silent voxels are zero in both.
    """
    t = feats.shape[0]
    f = (feats / norms[None, :, None, None]).reshape(t, feats.shape[1], -1)  # (T, C, G*G)
    avg = hrf.tr_average_matrix(t, fps, tr, n_vol)  # (n_vol, T)
    bold = np.zeros((n_vol, s.n_voxels), np.float32)
    neural_tr = np.zeros((n_vol, s.n_voxels), np.float32)
    resp = np.flatnonzero(s.responsive)
    for start in range(0, len(resp), CHUNK):
        idx = resp[start:start + CHUNK]
        neural = np.power(np.maximum(_drive(s, idx, f, scene), 0) + 1e-6, s.exponent[idx])  # (T, n)
        conv = np.empty_like(neural)
        for peak in np.unique(s.hrf_peak[idx]):
            m = s.hrf_peak[idx] == peak
            conv[:, m] = hrf.convolve(neural[:, m], hrf.double_gamma(1.0 / fps, float(peak)))
        bold[:, idx] = avg @ conv
        neural_tr[:, idx] = avg @ neural
    return bold, neural_tr


def _ar1(rng, n_vol: int, phi: np.ndarray) -> np.ndarray:
    """Unit-variance AR(1) series per column: (n_vol, V)."""
    w = rng.standard_normal((n_vol, len(phi))).astype(np.float32)
    out = np.empty_like(w)
    out[0] = w[0]
    k = np.sqrt(1 - phi**2)
    for j in range(1, n_vol):
        out[j] = phi * out[j - 1] + k * w[j]
    return out


def noisy_run(s: Subject, signal: np.ndarray, rng: np.random.Generator, tr: float) -> np.ndarray:
    """One measured run: signal (n_vol, V) in units of its sd, plus noise of sd 1/snr (1 for
    silent voxels) made of AR(1) noise, a shared component and slow drift; z-scored per voxel."""
    n_vol, v = signal.shape
    own = _ar1(rng, n_vol, s.ar_phi)
    shared = _ar1(rng, n_vol, np.full(1, np.exp(-tr / 3.0), np.float32))  # (n_vol, 1)
    beta = s.global_beta
    noise = np.sqrt(1 - beta**2) * own + beta * shared
    j = (np.arange(n_vol)[:, None] + 0.5) / n_vol
    basis = np.concatenate([j - 0.5, np.cos(np.pi * np.arange(1, 4)[None] * j)], axis=1)  # (n_vol, 4)
    drift = basis @ rng.standard_normal((4, v)).astype(np.float32) * s.drift_sd / 2
    scale = np.where(s.snr > 0, 1.0 / np.maximum(s.snr, 1e-6), 1.0).astype(np.float32)
    data = signal + (noise + drift) * scale
    data -= data.mean(0)
    data /= np.maximum(data.std(0), 1e-6)
    return data.astype(np.float32)
