"""Arrow schemas of the store's tables (DESIGN section 2).

Vectors are fixed-size float32 lists (`img`, `txt`, `act`, `mix`) so LanceDB can index them;
`mix` stays float32 because float16 batch search was ~7x slower (notes/lancedb.md). Per-frame
embeddings and fMRI are fixed-shape tensors, which LanceDB does not mistake for search vectors.
"""

from __future__ import annotations

import pyarrow as pa

from cineneuron.schemas.superclasses import N_SUPERCLASSES

SCHEMA_VERSION = 1
CLIPS = "clips"
META = "meta"


def vec(d: int) -> pa.DataType:
    return pa.list_(pa.float32(), d)


def clips_schema(dims: dict[str, int], n_frames: int) -> pa.Schema:
    """dims: image/text/action/cond output dims of the store's preset."""
    d_mix = dims["text"] + dims["image"] + dims["action"]
    return pa.schema([
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("video", pa.string()),  # path relative to the dataset root (part of the id)
        pa.field("video_uri", pa.string()),  # where to read it
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("split", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("labels", pa.list_(pa.string())),
        pa.field("label_vec", pa.list_(pa.float32(), N_SUPERCLASSES)),
        pa.field("factors", pa.string()),  # JSON ground truth where known (synth), else "{}"
        pa.field("frames", pa.list_(pa.binary())),  # small JPEG previews for replay
        pa.field("img_frames", pa.fixed_shape_tensor(pa.float32(), (n_frames, dims["image"]))),
        pa.field("img", vec(dims["image"])),
        pa.field("txt", vec(dims["text"])),
        pa.field("act", vec(dims["action"])),
        pa.field("mix", vec(d_mix)),  # [txt, img, act], each unit norm
        pa.field("cond", pa.binary()),  # float16 (cond_len, dims["cond"]), real tokens only
        pa.field("cond_len", pa.int32()),
        pa.field("ingested_at", pa.timestamp("ms", tz="UTC")),
    ])


def fmri_table_name(dataset: str, subject: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in f"{dataset}_{subject}")
    return f"fmri_{safe}"


def fmri_schema(n_tr: int, n_voxels: int) -> pa.Schema:
    return pa.schema([
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("clip_id", pa.string()),
        pa.field("subject", pa.string()),
        pa.field("split", pa.string()),
        pa.field("repeat", pa.int32()),  # -1: average of repeats
        pa.field("tr_index", pa.int32()),
        pa.field("voxels", pa.fixed_shape_tensor(pa.float16(), (n_tr, n_voxels))),
    ])


def meta_schema() -> pa.Schema:
    return pa.schema([
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.string()),  # JSON
        pa.field("blob", pa.binary()),  # arrays, e.g. the encoded empty prompt
    ])
