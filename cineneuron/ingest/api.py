"""One call for what `cn ingest` does: a source's clips, then (optionally) subjects' fMRI."""

from __future__ import annotations

from dataclasses import dataclass, field

from cineneuron.config import RootConfig
from cineneuron.ingest.clips import IngestOptions, IngestReport, ingest_clips
from cineneuron.ingest.fmri import FmriReport, ingest_subject


@dataclass
class IngestResult:
    clips: IngestReport
    fmri: list[FmriReport] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.clips.exit_code

    def summary(self) -> str:
        return "\n".join([self.clips.summary()] + [f.summary() for f in self.fmri])


def ingest_options(cfg: RootConfig, *, limit: int | None = None, force: bool = False) -> IngestOptions:
    """The ingest settings of the root config's `encoders` section (captioner included)."""
    from cineneuron.labels.captioner import captioner_notice, get_captioner
    from cineneuron.runtime import encoder_runtime

    e = cfg.encoders
    cap = e.captioner.model_dump()
    return IngestOptions(runtime=encoder_runtime(e), offload=e.offload, limit=limit, batch_size=e.batch_size, backend=e.video_backend, timeout_s=e.video_timeout_s,
                         preview_frames=e.preview_frames, force=force, captioner=get_captioner(cap, notify=lambda m: None),
                         captioner_notice=captioner_notice(cap))


def ingest(store, source: str, root: str, cfg: RootConfig | None = None, *, subjects: list[str] = (),
           source_name: str | None = None, limit: int | None = None, force: bool = False,
           ray: str | None = None, progress=None) -> IngestResult:
    """Ingest `source` (a name from `cineneuron.sources.source_names()`) at `root` into `store`,
    then each of `subjects`' fMRI (cc2017, synth, cinebrain). progress(advance, total).
    ray: a Ray address (`local`, `auto`, HOST:PORT, ray://...) to decode and encode the clips on
    a Ray cluster; the fMRI half stays in this process (it is small)."""
    from cineneuron.sources import get_source

    cfg = cfg or RootConfig()
    src = get_source(source)(str(root), **({"source_name": source_name} if source_name else {}))
    opts = ingest_options(cfg, limit=limit, force=force)
    if ray:
        from cineneuron.ingest.ray_ingest import ingest_clips_ray

        report = ingest_clips_ray(store, src, opts, ray, progress=progress)
    else:
        report = ingest_clips(store, src, opts, progress=progress)
    fmri = [ingest_subject(store, source, str(root), str(s), cfg, source_name=source_name) for s in subjects]
    return IngestResult(report, fmri)
