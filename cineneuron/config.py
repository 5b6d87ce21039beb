"""The one typed root config (LeRobot-style): sections for store, encoders, brain, train, decode.

Load it with `load_config(path, overrides)`: a YAML, TOML or JSON file, then `section.key=value`
overrides from the command line. Validation errors say which field and what to do. The resolved
config is saved beside every run (`save_config`). No torch here: the CLI imports this module.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cineneuron.errors import CNError
from cineneuron.schemas.datasets import CC2017Config, CineBrainConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StoreConfig(_Section):
    uri: str = Field(default_factory=lambda: os.environ.get("CN_STORE", "./cn-store"),
                     description="LanceDB URI: a local folder or s3://, gs://, az:// (default $CN_STORE, else ./cn-store)")
    storage_options: dict[str, str] = Field(default_factory=dict, description="passed to LanceDB for object storage (keys, region, endpoint)")
    catalog_dir: str | None = Field(None, description="local folder for the SQLite catalog; needed for remote URIs (default: inside a local store)")
    catalog_url: str | None = Field(default_factory=lambda: os.environ.get("CN_CATALOG_URL") or None, description=(
        "SQLAlchemy URL of a shared catalog, e.g. postgresql+psycopg://user:pw@host/db, so every machine of a job "
        "sees the same jobs, runs and datasets (default $CN_CATALOG_URL, else SQLite in catalog_dir)"))
    ann_threshold: int = Field(200_000, ge=256, description="rows in `clips` past which an ANN index on `mix` is built")
    index_type: Literal["ivf_flat", "ivf_pq", "ivf_hnsw_sq"] = Field("ivf_flat", description=(
        "ANN index on mix: IVF-Flat (exact scores in the probed partitions; fastest build and query at 1M here, "
        "but keeps a second full copy of mix), IVF-PQ (compressed, for pools whose vectors outgrow the disk cache) "
        "or IVF-HNSW-SQ"))
    ivf_partitions: int | None = Field(None, ge=1, description="IVF partitions of the ANN index; null: sqrt(rows)")
    nprobes: int = Field(20, ge=1, description="IVF partitions probed per ANN query")
    ef: int = Field(200, ge=10, description="HNSW search breadth (ivf_hnsw_sq only)")
    refine_factor: int = Field(20, ge=1, description="ivf_pq / ivf_hnsw_sq: candidates re-ranked exactly = k * refine_factor")


class CaptionerConfig(_Section):
    name: Literal["none", "qwen2.5-vl"] = Field("none", description="captioner for clips without a caption; 'none' leaves them unlabelled")
    model_dir: str | None = Field(None, description="local Qwen2.5-VL folder (never downloaded)")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where the captioner runs")
    max_new_tokens: int = Field(48, ge=4, description="caption length limit")


class EncodersConfig(_Section):
    preset: str | None = Field(None, description=(
        "encoder preset: 'classic' (offline, CPU) or 'paper' (local weights), or a preset .json path; null: the "
        "store's own (cn init: classic). Set on an existing store, it must be the store's preset"))
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description=(
        "where encoders run: auto (cuda when a GPU is visible, else cpu), cpu, cuda or cuda:N; recorded per run, "
        "not part of the encoder identity"))
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description=(
        "encoder compute dtype: auto = bf16 on cuda, fp32 on cpu (UMT5 overflows in fp16)"))
    offload: Literal["auto", "on", "off"] = Field("auto", description=(
        "ingest: keep each encoder's model in CPU memory and move it to the device only for its own calls, so "
        "encoders that do not fit together take turns; auto = when their weights exceed 90 % of the device"))
    batch_size: int = Field(16, ge=1, description="clips per encode batch")
    video_backend: Literal["decord", "pyav"] = Field("decord", description="video reader; PyAV is the always-installable fallback")
    video_timeout_s: float = Field(120.0, gt=0, description="per-file decode timeout; a hang fails that file only")
    clip_s: float = Field(2.0, gt=0, description="clip length for sources cut into fixed windows")
    preview_frames: int = Field(8, ge=1, description="JPEG preview frames kept per clip for replay")
    preview_size: int = Field(96, ge=16, description="side of the preview frames, pixels")
    weights_dir: str | None = Field(None, description="base folder for relative weight paths in a preset (else $CN_WEIGHTS_DIR)")
    captioner: CaptionerConfig = Field(default_factory=CaptionerConfig, description="optional vision-language captioner")


class BrainConfig(_Section):
    backbone: Literal["mlp", "transformer"] = Field("mlp", description="'mlp' (default, CPU) or 'transformer'")
    hidden: int = Field(512, ge=8, description="shared hidden size after the per-subject input layer")
    n_blocks: int = Field(2, ge=0, description="residual MLP blocks (or transformer layers)")
    n_heads: int = Field(4, ge=1, description="attention heads (transformer only)")
    n_tokens: int = Field(16, ge=1, description="fMRI tokens: patches (transformer) / tokens of F")
    d_f: int = Field(64, ge=4, description="width of the fMRI embedding F (B, n_tokens, d_f)")
    dropout: float = Field(0.15, ge=0, lt=1, description="dropout in the backbone")
    preset: str | None = Field(None, description=(
        "named transformer size preset ('toy', 'small', 'paper' = 24 x 2048 x 513 tokens, GPU); needs backbone=transformer "
        "(brain.preset=paper with the MLP is refused)"))


    @model_validator(mode="before")
    @classmethod
    def _preset_needs_transformer(cls, data):
        """A size preset is a transformer size: it selects that backbone, and the MLP refuses it."""
        if isinstance(data, dict) and data.get("preset"):
            if data.get("backbone") in (None, "transformer"):
                data = {**data, "backbone": "transformer"}
            else:
                raise ValueError(f"brain.preset={data['preset']!r} is a transformer size; with backbone="
                                 f"{data['backbone']!r} it would be ignored: drop brain.preset or set brain.backbone=transformer")
        return data


class TrainConfig(_Section):
    epochs: int = Field(30, ge=1, description="passes over the training samples; each epoch uses the other repeat")
    batch_size: int = Field(64, ge=2, description="samples per step (paper: 144)")
    lr: float = Field(1e-3, gt=0, description="peak learning rate of the OneCycle schedule")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")
    pct_start: float = Field(0.1, gt=0, lt=1, description="fraction of steps spent warming up")
    temperature: float = Field(0.07, gt=0, description="InfoNCE temperature (paper: 0.07)")
    lambda_act: float = Field(0.1, ge=0, description="weight of the ACTION alignment loss (paper: 0.1)")
    lambda_cls: float = Field(10.0, ge=0, description="weight of the CATEGORY (15 superclasses, BCE+focal) loss (paper: 10)")
    use_action: bool = Field(True, description="False = the --no-action ablation")
    use_cls: bool = Field(True, description="False = the --no-cls ablation")
    focal_gamma: float = Field(2.0, ge=0, description="focal loss gamma (0 reduces it to BCE)")
    focal_alpha: float | None = Field(0.25, description="focal loss alpha; null for none")
    lambda_router: float = Field(1.0, ge=0, description="stage 2: weight of the router InfoNCE over mixture scores")
    router_holdout: float = Field(0.0, ge=0, lt=1, description=(
        "fraction of training clips (in 20-s blocks) that stage 1 and the stage-2 backbone never fit; the router "
        "learns on them from out-of-sample predictions. 0 = fit the router on the training predictions themselves. "
        "Stage 2 refuses a value other than its stage-1 run's"))
    stage2_epochs: int = Field(10, ge=1, description="stage 2 epochs")
    stage2_lr: float = Field(3e-4, gt=0, description="stage 2 peak learning rate")
    router_lr_mult: float = Field(10.0, gt=0, description=(
        "stage 2 (replay and wan): the router's learning rate is this times stage2_lr, without weight decay "
        "(it starts at uniform weights and is tiny)"))
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; null: no clipping")
    seed: int = Field(0, description="seed for init, shuffling and dropout")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description=(
        "training device (both stages) and query device: auto (cuda when a GPU is visible, else cpu), cpu, cuda, cuda:N"))
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description=(
        "compute dtype: auto = bf16 on cuda (the Wan DiT's dtype, and autocast for the Brain Model, router and "
        "fusion), fp32 on cpu"))
    micro_batch: int | None = Field(None, ge=1, description=(
        "Wan stage 2: samples per DiT forward/backward, gradients accumulated over the batch; the InfoNCE batch "
        "stays whole. null: the whole batch at once"))
    grad_ckpt: bool = Field(True, description="Wan stage 2: gradient checkpointing in the DiT (recompute each block in backward)")
    lora_fp32: bool = Field(False, description="Wan stage 2: keep the LoRA weights in fp32 (41 % more activation memory); false: the DiT's dtype")
    memory_check: bool = Field(True, description="Wan stage 2: refuse before any model loads when the memory estimate exceeds the device")
    memory_budget_gb: float | None = Field(None, gt=0, description="memory stage 2 may use; null: the device's memory")
    val_every: int = Field(1, ge=1, description="validate on the test split every N epochs (and at the end)")
    checkpoint_every: int = Field(5, ge=1, description="write a resumable checkpoint every N epochs (and at the end)")
    runs_dir: str | None = Field(None, description="where checkpoints go (default: <store>/runs)")


class DecodeConfig(_Section):
    decoder: Literal["replay", "wan"] = Field("replay", description="'replay' (CPU, blends retrieved clips) or 'wan' (Wan2.1 through diffusers)")
    top_k: int = Field(5, ge=1, description="memories retrieved per query (the image and action sets)")
    temperature: float = Field(0.05, gt=0, description="softmax temperature over mixture scores for the replay blend")
    fps: int = Field(8, ge=1, description="frame rate of written videos")
    pool_filter: str = Field("split <> 'test'", description=(
        "SQL filter on the memory pool; test clips are the ground truth, never memories, so it cannot be null "
        "(a --where filter narrows it further)"))
    exact: bool | None = Field(None, description="force the exact (true) or ANN (false) search; null chooses")
    wan_model_dir: str | None = Field(None, description="local diffusers-format Wan2.1 folder; null with wan_toy=true builds toy weights")
    wan_toy: bool = Field(False, description="use toy random Wan weights (tests and demos; output is noise)")
    wan_random_init: str | None = Field(None, description=(
        "build the generator from a model config in schemas/presets/models (e.g. 'wan2.1-t2v-1.3b') with random "
        "weights instead of a folder: the real size through the same code, for GPU checks; output is noise"))
    num_frames: int = Field(57, ge=1, description="Wan frames, must be 4k+1 (cc2017: 57, CineBrain: 33)")
    height: int = Field(624, ge=16, description="Wan height, multiple of 16 (cc2017: 624, CineBrain: 480)")
    width: int = Field(624, ge=16, description="Wan width, multiple of 16 (cc2017: 624, CineBrain: 720)")
    steps: int = Field(50, ge=1, description="Wan denoising steps")
    guidance_scale: float = Field(5.0, ge=0, description="classifier-free guidance; the negative is the stored empty prompt")
    wan_lora_rank: int = Field(16, ge=1, description="stage 2 with --decoder wan: LoRA rank on the DiT's attention projections (paper: 16)")
    wan_lora_alpha: float = Field(16.0, gt=0, description="stage 2 with --decoder wan: LoRA alpha, saved with the adapter (paper: 16)")
    wan_seed: int = Field(0, description="seed of the Wan sampler's initial noise (same seed, same video)")

    @field_validator("pool_filter", mode="before")
    @classmethod
    def _guard_not_null(cls, v):
        if v is None or (isinstance(v, str) and not v.strip()):
            raise ValueError("cannot be null or empty: test clips would become memories; "
                             "give a filter that keeps them out, e.g. \"split <> 'test'\"")
        return v


class FmriConfig(_Section):
    """fMRI ingest options per dataset (voxel selection lives in cc2017.selection)."""

    cc2017: CC2017Config = Field(default_factory=CC2017Config, description="cc2017 and synth: lag, trimming, detrend, voxel selection")
    cinebrain: CineBrainConfig = Field(default_factory=CineBrainConfig, description="CineBrain: ROI sets, TR, clip length, shift")
    batch_size: int = Field(2048, ge=1, description="samples per store write")


class RootConfig(_Section):
    store: StoreConfig = StoreConfig()
    encoders: EncodersConfig = EncodersConfig()
    fmri: FmriConfig = FmriConfig()
    brain: BrainConfig = BrainConfig()
    train: TrainConfig = TrainConfig()
    decode: DecodeConfig = DecodeConfig()


def _read(path: Path) -> dict:
    if not path.exists():
        raise CNError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text) or {}
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix == ".json":
            return json.loads(text)
    except Exception as e:
        raise CNError(f"cannot parse {path}: {str(e).splitlines()[0]}") from None
    raise CNError(f"config {path} must be .yaml, .yml, .toml or .json")


# An override explicitly set to null (`--set decode.exact=null`), as opposed to one not given.
NULL = type("Null", (), {"__repr__": lambda self: "null"})()


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for i, k in enumerate(keys[:-1]):
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            where = ".".join(keys[: i + 1])
            raise CNError(f"config override {dotted}: {where} is set to {d!r}, not a section; "
                          f"drop the {where}=... override (see `cn config`)")
    d[keys[-1]] = None if value is NULL else value


def parse_override(item: str) -> tuple[str, object]:
    if "=" not in item:
        raise CNError(f"override {item!r} must look like section.key=value, e.g. train.lr=3e-4")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw else None
    return key.strip(), NULL if value is None else value


def load_config(path: str | Path | None = None, overrides: dict | list[str] | None = None) -> RootConfig:
    data = _read(Path(path)) if path else {}
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    for key, value in items:
        if value is not None:  # None: not given; NULL: set to null on purpose
            _set(data, key, value)
    try:
        return RootConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        hint = "remove it (unknown field)" if err["type"] == "extra_forbidden" else err["msg"]
        raise CNError(f"config field {where}: {hint}; see `cn config` for every field with its meaning") from None


def save_config(cfg: RootConfig, directory: str | Path, name: str = "run_config.json") -> Path:
    """The resolved root config, saved beside a run (checkpoints own `config.json`)."""
    from cineneuron.atomic import atomic_write_text

    return atomic_write_text(Path(directory) / name, cfg.model_dump_json(indent=2))


def describe() -> str:
    """Every field with its default and meaning, for `cn config`."""
    lines = []
    for name, field in RootConfig.model_fields.items():
        lines.append(f"[{name}]")
        for k, f in field.annotation.model_fields.items():
            default = f.default if f.default_factory is None else f.default_factory()
            if isinstance(default, BaseModel):
                default = default.model_dump(mode="json")
            lines.append(f"  {k} = {default!r:<14}  # {f.description}")
    return "\n".join(lines)
