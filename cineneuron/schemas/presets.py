"""Encoder presets kept as data (JSON), in the style of open_clip's model configs.

A preset names one encoder per modality with its output dim, so `cn init` can describe a store
before any encoder is built. `cineneuron.encoders` turns a preset into live encoders.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from cineneuron.errors import CNError

MODALITIES = ("image", "text", "action", "cond")


class EncoderSpec(BaseModel):
    name: str = Field(description="registry name of the encoder")
    dim: int = Field(gt=0, description="output dimension")
    config: dict = Field(default_factory=dict, description="the encoder's typed config, as data")


class FrameSpec(BaseModel):
    n: int = Field(16, gt=0, description="frames sampled uniformly per clip")
    size: int = Field(64, gt=0, description="square side the frames are resized to on decode")


# The three spaces of MoM, named txt/img/act everywhere past the encoders (whose modality names
# are text/image/action), in the order of the store's `mix` column.
SPACES = ("txt", "img", "act")
SPACE_MODALITY = {"txt": "text", "img": "image", "act": "action"}


class Preset(BaseModel):
    name: str
    description: str = ""
    frames: FrameSpec = FrameSpec()
    encoders: dict[str, EncoderSpec]
    # Filled in by encoders at store creation (e.g. the pymoten projection seed, weights hashes).
    identity: dict = Field(default_factory=dict)

    def dims(self) -> dict[str, int]:
        return {m: self.encoders[m].dim for m in MODALITIES}

    def space_dims(self) -> dict[str, int]:
        """Widths of the three retrieval spaces, in `mix` order: {"txt", "img", "act"}."""
        d = self.dims()
        return {s: d[SPACE_MODALITY[s]] for s in SPACES}

    @property
    def mix_dim(self) -> int:
        d = self.dims()
        return d["text"] + d["image"] + d["action"]

    def fingerprint(self) -> str:
        """Hash of everything that changes what the vectors mean."""
        blob = json.dumps(self.model_dump(exclude={"description"}), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def builtin_presets() -> list[str]:
    root = resources.files("cineneuron.schemas") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def load_preset(name_or_path: str) -> Preset:
    """Load a built-in preset by name, or a preset JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        text = path.read_text()
    else:
        res = resources.files("cineneuron.schemas") / "presets" / f"{name_or_path}.json"
        if not res.is_file():
            raise CNError(f"unknown preset {name_or_path!r}; built-in presets: {', '.join(builtin_presets())}, or give a preset .json file")
        text = res.read_text()
    try:
        preset = Preset.model_validate_json(text)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(the whole file)"
        raise CNError(f"preset {name_or_path}: field {field}: {err['msg']}; see cineneuron/schemas/presets/classic.json "
                      "for the layout") from None
    missing = [m for m in MODALITIES if m not in preset.encoders]
    if missing:
        raise CNError(f"preset {preset.name!r} names no encoder for {', '.join(missing)}; add them under 'encoders'")
    return preset
