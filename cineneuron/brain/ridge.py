"""Closed-form ridge baseline: flattened fMRI -> each target space (pooled img, txt, act).

The classic linear decoder (as in the ridge stages of MindEye/NeuroClips): standardise the
voxels, then one scikit-learn `RidgeCV` per target space, its alpha chosen from a small grid by
efficient leave-one-out. Predictions live in the encoders' spaces, so they go through the same
retrieval evaluation as the Brain Model's heads.

nilearn-style estimator: `__init__` stores its arguments only; everything learnt by `fit` ends
in an underscore (`spaces_`, `alpha_`, `models_`, `x_mean_`, `x_scale_`, `n_features_in_`).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import RidgeCV

from cineneuron.errors import CNError

DEFAULT_ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def pool_frames_mean(img_frames: np.ndarray) -> np.ndarray:
    """(N, T, d) per-frame embeddings -> (N, d) mean of unit frames (the untrained FramePool)."""
    f = np.asarray(img_frames, dtype=np.float64)  # (N, T, d)
    f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)  # (N, T, d)
    return f.mean(axis=1)  # (N, d)


def _flatten(voxels) -> np.ndarray:
    x = np.asarray(voxels, dtype=np.float64)
    if x.ndim == 3:
        x = x.reshape(x.shape[0], -1)  # (N, n_tr, V) -> (N, n_tr*V)
    if x.ndim != 2:
        raise CNError(f"ridge needs voxels shaped (samples, n_tr, voxels) or (samples, features), got {x.shape}")
    return x


class RidgeBaseline(BaseEstimator):
    """Ridge regression from fMRI to several target spaces.

    alphas: the grid searched per target space. targets given to `fit` as {name: (N, d)};
    an `img_frames` entry (N, T, d) is mean-pooled over unit frames into `img` first.
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, fit_intercept: bool = True, standardize: bool = True):
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.standardize = standardize

    def _scale(self, x: np.ndarray) -> np.ndarray:
        return (x - self.x_mean_) / self.x_scale_ if self.standardize else x  # (N, F)

    def fit(self, voxels, targets: dict[str, np.ndarray]) -> RidgeBaseline:
        x = _flatten(voxels)  # (N, F)
        targets = dict(targets)
        if "img_frames" in targets:
            targets["img"] = pool_frames_mean(targets.pop("img_frames"))
        for name, y in targets.items():
            if len(y) != len(x):
                raise CNError(f"ridge target {name!r} has {len(y)} rows but there are {len(x)} fMRI samples")
        self.n_features_in_ = x.shape[1]
        self.x_mean_ = x.mean(axis=0)  # (F,)
        sd = x.std(axis=0)  # (F,)
        self.x_scale_ = np.where(sd > 0, sd, 1.0)  # constant voxels stay as they are
        xs = self._scale(x)
        self.models_, self.alpha_ = {}, {}
        for name, y in targets.items():
            model = RidgeCV(alphas=np.asarray(self.alphas, dtype=float), fit_intercept=self.fit_intercept)
            model.fit(xs, np.asarray(y, dtype=np.float64))  # y (N, d)
            self.models_[name], self.alpha_[name] = model, float(model.alpha_)
        self.spaces_ = list(targets)
        return self

    def predict(self, voxels) -> dict[str, np.ndarray]:
        """{space: (N, d) predictions}, not normalised (cosine retrieval normalises)."""
        if not hasattr(self, "models_"):
            raise CNError("the ridge baseline is not fitted; call fit() first")
        x = _flatten(voxels)
        if x.shape[1] != self.n_features_in_:
            raise CNError(f"ridge was fitted on {self.n_features_in_} features (n_tr x voxels), got {x.shape[1]}")
        xs = self._scale(x)
        return {name: m.predict(xs).astype(np.float32) for name, m in self.models_.items()}
