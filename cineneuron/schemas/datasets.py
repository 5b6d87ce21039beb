"""Options of each dataset's fMRI ingest: plain pydantic, so the root config (and the CLI's
start-up) needs neither numpy nor the fMRI readers. The readers live in `cineneuron.fmri`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cineneuron.errors import CNError

ROI_NAMES = ("visual", "hippocampus", "mpfc")
TOL = 1e-6


class VoxelSelection(BaseModel):
    """How a subject's voxels are chosen."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["reliability", "mask", "all"] = Field("reliability", description="reliability, a mask file, or all voxels")
    alpha: float = Field(0.05, gt=0, lt=1, description="alpha of the reliability test, corrected over tested voxels")
    correction: Literal["bonferroni", "fdr"] = Field(
        "bonferroni", description="bonferroni (family-wise, the paper's) or fdr (Benjamini-Hochberg false discovery rate)")
    mask_path: Path | None = Field(None, description=".npy of bools (one per source voxel) or int indices; method 'mask'")

    @model_validator(mode="after")
    def _mask_needs_path(self):
        if self.method == "mask" and self.mask_path is None:
            raise ValueError("selection method 'mask' needs mask_path")
        return self



class CC2017Config(BaseModel):
    """Options of a cc2017 ingest (all have the paper's defaults)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("cc2017", description="source name in clip ids (the simulator uses its own)")
    form: Literal["auto", "raw", "mat"] = "auto"
    tr: float = Field(2.0, gt=0, description="seconds per volume; one clip per TR")
    lag_s: float = Field(4.0, ge=0, description="response lag after the clip, a multiple of tr")
    n_tr: int = Field(1, gt=0, description="response volumes per sample")
    n_keep: int = Field(240, gt=0, description="volumes kept per raw run after trimming")
    trim_tail: int = Field(4, ge=0, description="last volumes dropped from raw runs; the first 1 or 2 follow "
                                               "from the run's length (n_keep+1+tail -> 1, n_keep+2+tail -> 2)")
    detrend_order: int | None = Field(4, ge=0, description="polynomial detrend of raw runs; None: none")
    test_single_repeats: bool = Field(False, description="also emit each test repeat as a sample")
    selection: VoxelSelection = Field(default_factory=VoxelSelection)



class CineBrainConfig(BaseModel):
    """Options of a CineBrain ingest."""

    model_config = ConfigDict(extra="forbid")

    source: str = "cinebrain"
    rois: tuple[str, ...] = Field(("visual",), description="ROI sets: visual, hippocampus, mpfc")
    tr: float = Field(0.8, gt=0)
    clip_s: float = Field(4.0, gt=0, description="clip length; a whole number of TRs")
    shift_s: float = Field(4.0, ge=0, description="stimulus-to-response shift")

    @field_validator("rois", mode="before")
    @classmethod
    def _split_plus(cls, v):
        if isinstance(v, str):  # "visual+hippocampus"
            v = tuple(p.strip() for p in v.split("+") if p.strip())
        v = tuple(v)
        bad = [r for r in v if r not in ROI_NAMES]
        if bad or not v:
            raise ValueError(f"unknown ROI {bad}; choose from {', '.join(ROI_NAMES)}")
        return v

    @property
    def n_tr(self) -> int:
        n = self.clip_s / self.tr
        if abs(n - round(n)) > TOL:
            raise CNError(f"clip length {self.clip_s} s is not a whole number of TRs of {self.tr} s")
        return int(round(n))
