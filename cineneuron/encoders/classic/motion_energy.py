"""pymoten encoders of the `classic` preset: static Gabor energy (image), motion energy (action).

Both reduce pymoten's wide outputs (300 static / 1,380 motion filters) to the preset's dim with
a fixed Gaussian random projection. The projection depends on a seed and the pyramid's width
only, never on data; both are written to the store at creation (`init_store_meta`) with a hash
of the matrix, and a later build for that store checks that it makes the very same matrix.
"""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

import numpy as np
from pydantic import Field

from cineneuron.encoders.classic import gabor
from cineneuron.encoders.registry import Encoder, EncoderConfig, register
from cineneuron.errors import CNError, StoreMismatchError

# Bump when the feature recipe changes (compression, standardisation, pooling), so that stores
# made with the old recipe refuse new vectors.
RECIPE = "log1p(energy/filter_norm) - 1/f-noise reference > per-vector z-score > +bias > gaussian projection; v1"
CHUNK = 32  # clips per matrix product: bounds memory (~60 MB of temporaries at 16 x 64 x 64)


class _MotenConfig(EncoderConfig):
    size: int = Field(64, ge=8, description="square side (px) of the pyramid; other frames are resized")
    spatial_frequencies: list[float] = Field([0, 2, 4, 8, 16], description="cycles per image; 0 adds local luminance filters")
    filter_spacing: float = Field(3.5, gt=0, description="spacing between filter centres in envelope s.d.")
    seed: int = Field(0, ge=0, description="seed of the random projection (kept in the store)")


class _MotenEncoder(Encoder):
    """Shared parts: filter bank, projection, store meta, input checks."""

    Config: ClassVar[type[EncoderConfig]] = _MotenConfig

    def __init__(self, config, dim: int, *, store_meta: dict | None = None):
        super().__init__(config, dim, store_meta=store_meta)
        self._check_config()

    def _check_config(self) -> None:
        nyquist = self.config.size / 2
        if max(self.config.spatial_frequencies, default=0) >= nyquist:
            raise CNError(f"{self.name}: spatial_frequencies must stay below {nyquist:g} cycles per image "
                          f"at size {self.config.size}")

    def _pyramid_key(self) -> tuple:
        raise NotImplementedError

    @cached_property
    def bank(self) -> gabor.GaborBank:
        return _cached(("bank", self._pyramid_key()), lambda: gabor.make_bank(self._pyramid()))

    @cached_property
    def reference(self) -> np.ndarray:
        """(F,) fixed centre of the compressed features (see gabor.reference_profile)."""
        return _cached(("reference", self._pyramid_key()), lambda: gabor.reference_profile(self.bank))

    def _pyramid(self):
        return _cached(("pyramid", self._pyramid_key()), lambda: _make_pyramid(self._pyramid_key()))

    def _features_to_vectors(self, energy: np.ndarray) -> np.ndarray:
        """(..., F) energies -> (..., dim) float32 vectors."""
        x = gabor.compress(energy, self.bank.norm) - self.reference  # (..., F)
        return gabor.project(x, self.projection)  # (..., dim)

    @property
    def in_dim(self) -> int:
        """Width of the pyramid output that the projection reduces."""
        return len(self._pyramid().filters)

    # -- projection and store meta -------------------------------------------------------

    def _stored(self) -> dict | None:
        """This encoder's part of the store meta: under its name, or the whole dict if flat."""
        meta = self.store_meta.get(self.name)
        if meta is None and "projection_sha256" in self.store_meta:
            meta = self.store_meta
        return meta

    @cached_property
    def projection(self) -> np.ndarray:
        """(in_dim + 1, dim) float32; checked against the store's record when there is one."""
        stored = self._stored()
        if stored is None:
            return gabor.projection_matrix(self.config.seed, self.in_dim, self.dim)
        seed, in_dim, dim = stored.get("seed"), stored.get("in_dim"), stored.get("dim")
        if seed != self.config.seed:
            raise StoreMismatchError(f"{self.name}: the store was made with projection seed {seed}, "
                                     f"the preset says {self.config.seed}; use the store's preset")
        if (in_dim, dim) != (self.in_dim, self.dim):
            raise StoreMismatchError(f"{self.name}: the store projects {in_dim} -> {dim} features, this pyramid "
                                     f"{self.in_dim} -> {self.dim}; use the store's preset and pymoten "
                                     f"{stored.get('pymoten')}")
        matrix = gabor.projection_matrix(seed, in_dim, dim)
        if gabor.matrix_hash(matrix) != stored.get("projection_sha256"):
            raise StoreMismatchError(f"{self.name}: this numpy does not reproduce the store's projection (hash "
                                     f"{stored.get('projection_sha256')}); use the numpy the store was made with")
        return matrix

    def init_store_meta(self) -> dict:
        import moten

        matrix = gabor.projection_matrix(self.config.seed, self.in_dim, self.dim)
        return {self.name: {
            "seed": self.config.seed,
            "in_dim": self.in_dim,
            "dim": self.dim,
            "projection_sha256": gabor.matrix_hash(matrix),
            "pymoten": moten.__version__,
        }}

    def build(self) -> "_MotenEncoder":
        _ = self.bank, self.reference, self.projection  # build now; a store mismatch fails here
        return self

    def identity(self) -> dict:
        import moten

        return {
            **super().identity(),
            "pymoten": moten.__version__,
            "n_filters": self.in_dim,
            "recipe": RECIPE,
            "projection_seed": (self._stored() or {}).get("seed", self.config.seed),
            "projection_sha256": gabor.matrix_hash(self.projection),
        }

    # -- frames in ---------------------------------------------------------------------------

    def _check_frames(self, frames: np.ndarray) -> None:
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise CNError(f"{self.name} takes uint8 frames (clips, frames, H, W, 3); got {frames.dtype} {frames.shape}")

    def _luminance(self, frames: np.ndarray) -> np.ndarray:
        """(B, T, H, W, 3) uint8 -> (B, T, size, size) float32 luminance, resized if needed."""
        s = self.config.size
        if frames.shape[2:4] != (s, s):
            frames = gabor.resize_frames(frames, s)
        return gabor.luminance(frames)

    def _energy(self, frames: np.ndarray, reduce) -> np.ndarray:
        """Filter energies of clips in chunks; `reduce` maps (b, T, F) -> (b, ...) per chunk."""
        self._check_frames(frames)
        outs = [reduce(gabor.filter_energy(self.bank, self._luminance(frames[i:i + CHUNK])))
                for i in range(0, len(frames), CHUNK)]
        if not outs:  # no clips
            return reduce(np.zeros((0, frames.shape[1], self.in_dim), np.float32))
        return np.concatenate(outs, 0)


@register("moten-static")
class MotenStatic(_MotenEncoder):
    """Static Gabor energy per frame (pymoten filters at temporal frequency 0) -> (B, T, dim)."""

    modality: ClassVar[str] = "image"

    class Config(_MotenConfig):
        orientations: list[float] = Field([0, 45, 90, 135], description="Gabor orientations in degrees (0-180)")

    def _pyramid_key(self) -> tuple:
        c = self.config
        return ("static", c.size, tuple(c.spatial_frequencies), tuple(c.orientations), c.filter_spacing)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """Raw filter energies, before compression and projection: (B, T, n_filters)."""
        return self._energy(frames, lambda e: e)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        return self._features_to_vectors(self.features(frames))  # (B, T, F) -> (B, T, dim)


@register("moten-motion")
class MotenMotion(_MotenEncoder):
    """Motion energy (pymoten's pyramid), averaged over a clip's frames -> (B, dim)."""

    modality: ClassVar[str] = "action"

    class Config(_MotenConfig):
        fps: int = Field(8, ge=2, description="frame rate of the frames handed in: frames.n / clip seconds (16 over 2 s = 8)")
        directions: list[float] = Field([0, 45, 90, 135, 180, 225, 270, 315], description="motion directions in degrees")
        # pymoten's default [0, 2, 4] assumes >= 15 fps; at 8 fps 4 Hz sits on the Nyquist
        # limit, where opposite directions give the same energy.
        temporal_frequencies: list[float] = Field([0, 2, 3], description="Hz; each must stay below fps / 2")

    def _check_config(self) -> None:
        super()._check_config()
        if max(self.config.temporal_frequencies, default=0) >= self.config.fps / 2:
            raise CNError(f"{self.name}: temporal_frequencies must stay below fps / 2 = {self.config.fps / 2:g} Hz")

    def _pyramid_key(self) -> tuple:
        c = self.config
        return ("motion", c.size, c.fps, tuple(c.spatial_frequencies), tuple(c.directions),
                tuple(c.temporal_frequencies), c.filter_spacing)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """Filter energies averaged over the frames whose whole filter fits in the clip: (B, F).

        Energy is pooled before compression, so a brief movement still counts.
        """
        def pool(e):  # (b, T, F) -> (b, F)
            return e[:, gabor.valid_frames(e.shape[1], self.bank.width)].mean(1)

        return self._energy(frames, pool)

    def encode_video(self, frames: np.ndarray) -> np.ndarray:
        return self._features_to_vectors(self.features(frames))  # (B, F) -> (B, dim)


# Pyramids, banks and references are pure functions of the pyramid parameters; keep them for
# the process (the motion bank is ~45 MB at 64 px and takes ~0.1 s), shared by every encoder with those parameters.
_CACHE: dict[tuple, object] = {}


def _cached(key: tuple, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _make_pyramid(key: tuple):
    kind, size, *rest = key
    if kind == "static":
        sf, orientations, spacing = rest
        return gabor.static_pyramid(size, sf, orientations, spacing)
    fps, sf, directions, tf, spacing = rest
    return gabor.motion_pyramid(size, fps, sf, directions, tf, spacing)
