"""The encoder registry.

An encoder class declares its `modality` and a pydantic `Config`; `dim` comes from the preset and
is checked against what the encoder really produces. Every encoder works on numpy in, numpy out:

- image:  `encode_frames(frames)`  frames (B, T, H, W, 3) uint8 -> (B, T, dim) float32 per frame
- action: `encode_video(frames)`   frames (B, T, H, W, 3) uint8 -> (B, dim) float32
- text:   `encode_text(texts)`     list[str] -> (B, dim) float32
- cond:   `encode_cond(texts)`     list[str] -> list of (L_i, dim) float16, real tokens only

`identity()` returns what the store records so that a later ingest or query with other weights
or settings is refused (architecture, preprocessing, weights hash).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from cineneuron.errors import CNError
from cineneuron.schemas.presets import MODALITIES, Preset

_REGISTRY: dict[str, type["Encoder"]] = {}

# Modules whose import registers the built-in encoders (imported on first use, not at start-up).
_BUILTIN_MODULES = (
    "cineneuron.encoders.classic",
    "cineneuron.encoders.paper",
)


class EncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Encoder:
    """Base class. `__init__` only stores the config; `build()` loads models (heavy imports)."""

    modality: ClassVar[str] = ""
    Config: ClassVar[type[EncoderConfig]] = EncoderConfig

    def __init__(self, config: EncoderConfig, dim: int, *, store_meta: dict | None = None):
        self.config = config
        self.dim = dim
        self.store_meta = store_meta or {}  # per-store state, e.g. a projection seed

    def build(self) -> "Encoder":
        return self

    def check_weights(self) -> None:
        """Raise MissingWeightsError before any work if a weight file is absent."""

    def init_store_meta(self) -> dict:
        """State this encoder needs kept in the store at creation (e.g. a projection seed).

        It comes back as `self.store_meta` whenever the encoder is built for that store, so
        later ingests compute exactly the same features.
        """
        return {}

    def identity(self) -> dict:
        return {"name": self.name, "config": self.config.model_dump(), "dim": self.dim}

    def _ensure_built(self):
        """The loaded model (`self._model`), building it on first use."""
        if getattr(self, "_model", None) is None:
            self.build()
        return self._model

    @property
    def name(self) -> str:
        return getattr(type(self), "_registry_name", type(self).__name__)

    # One of these is implemented per modality.
    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode_video(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode_text(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode_cond(self, texts: list[str]) -> list[np.ndarray]:
        raise NotImplementedError


def register(name: str):
    """Class decorator: make an encoder available under `name`."""

    def wrap(cls: type[Encoder]) -> type[Encoder]:
        if cls.modality not in MODALITIES:
            raise TypeError(f"{cls.__name__}.modality must be one of {MODALITIES}")
        cls._registry_name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # an optional family whose module is not present
            if e.name != mod:
                raise


def registered() -> dict[str, type[Encoder]]:
    _load_builtins()
    return dict(_REGISTRY)


def create_encoder(name: str, config: dict, dim: int, *, store_meta: dict | None = None) -> Encoder:
    reg = registered()
    if name not in reg:
        raise CNError(f"unknown encoder {name!r}; registered: {', '.join(sorted(reg))}")
    cls = reg[name]
    try:
        cfg = cls.Config.model_validate(config)
    except Exception as e:  # pydantic.ValidationError: say which encoder
        first = str(e).splitlines()[1:3]
        raise CNError(f"bad config for encoder {name!r}: {' '.join(s.strip() for s in first)}") from None
    return cls(cfg, dim, store_meta=store_meta)


@dataclass
class EncoderSet:
    """One encoder per modality, as a preset names them."""

    image: Encoder
    text: Encoder
    action: Encoder
    cond: Encoder
    residency: object = None  # encoders.residency.Residency once built for an ingest (turns on the device)

    def items(self):
        return [(m, getattr(self, m)) for m in MODALITIES]

    def check_weights(self) -> None:
        for _, enc in self.items():
            enc.check_weights()

    def build(self) -> "EncoderSet":
        for _, enc in self.items():
            enc.build()
        return self


def with_runtime(name: str, config: dict, runtime: dict | None) -> dict:
    """The encoder's config with the run's device, precision and weights folder (`encoders.*`).

    Only fields the encoder declares are set (the classic encoders have none); these fields are
    runtime, kept out of identity(), so the store's identity check is unaffected by them.
    """
    if not runtime:
        return config
    fields = registered()[name].Config.model_fields if name in registered() else {}
    return {**config, **{k: v for k, v in runtime.items() if k in fields and v is not None}}


def create_encoders(preset: Preset, *, store_meta: dict | None = None, runtime: dict | None = None) -> EncoderSet:
    """store_meta: per-store encoder state keyed by encoder name (see `init_store_meta`).

    runtime: {"device", "precision", "weights_dir"} from the root config (`runtime.encoder_runtime`).
    """
    encs = {}
    store_meta = store_meta or {}
    for m in MODALITIES:
        spec = preset.encoders[m]
        config = with_runtime(spec.name, spec.config, runtime)
        enc = create_encoder(spec.name, config, spec.dim, store_meta=store_meta.get(spec.name, {}))
        if enc.modality != m:
            raise CNError(f"preset {preset.name!r} puts encoder {spec.name!r} ({enc.modality}) under {m!r}")
        encs[m] = enc
    return EncoderSet(**encs)
