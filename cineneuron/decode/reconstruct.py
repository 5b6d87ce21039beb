"""`cn query --fmri`: fMRI -> Brain Model -> Mixture-of-Memories -> decoder -> video.

The JSON it returns is the stable output of `cn query --json` (documented in the README):
{"subject", "dataset", "checkpoint", "store_version", "decoder", "top_k", "where",
 "queries": [{"sample", "weights": {"txt", "img", "act"},
              "memories": [{"clip_id", "source", "caption", "score", "cos_txt", "cos_img", "cos_act",
                            "labels", "video", "start_s", "end_s"}], "video": path or null}]}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cineneuron.config import RootConfig
from cineneuron.errors import CNError
from cineneuron.decode.inputs import load_fmri_file
from cineneuron.store.runs import check_compatible, latest_checkpoint, resolve_dataset


def pool_where(cfg: RootConfig, where: str | None) -> str | None:
    """`(pool_filter) AND (where)`, both parsed and rewritten (store/where.py): a user filter can
    only narrow the pool; one that does not parse, or names an unknown column, is exit 2."""
    from cineneuron.store.where import combine

    return combine(cfg.decode.pool_filter, where)


def pool_guard(cfg: RootConfig) -> str | None:
    """The test-clip guard alone, which the store applies as its own mask besides the filter."""
    from cineneuron.store.where import combine

    return combine(cfg.decode.pool_filter, None)


class Reconstructor:
    """A trained subject's model plus its store: fMRI in, memories and videos out."""

    def __init__(self, store, cfg: RootConfig, subject: str, dataset: str | None = None, checkpoint: str | None = None):
        from cineneuron.decode.router import load_mom

        self.store, self.cfg, self.subject = store, cfg, str(subject)
        self.dataset = resolve_dataset(store, self.subject, dataset)
        if checkpoint is None and cfg.decode.decoder == "wan":
            from cineneuron.decode.wan_decoder import find_wan_run

            # The Brain Model trained together with the fusion, when there is one.
            checkpoint = find_wan_run(store, self.dataset, self.subject, cfg.train.runs_dir)
        self.checkpoint = Path(checkpoint) if checkpoint else latest_checkpoint(store, self.dataset, self.subject, base=cfg.train.runs_dir)
        self.model, self.router, self.mcfg, extra = load_mom(self.checkpoint)
        check_compatible(store, extra, self.dataset, self.subject)
        self.sub = store.catalog.subject(self.dataset, self.subject)

    def load(self, path: str | Path) -> np.ndarray:
        mask = self.store.subject_mask(self.dataset, self.subject)
        return load_fmri_file(path, self.sub.n_tr, self.sub.n_voxels, mask)

    def predict(self, voxels: np.ndarray) -> dict[str, np.ndarray]:
        from cineneuron.decode.router import predict_mom

        preds = predict_mom(self.model, self.router, voxels, self.subject)
        for name, v in preds.items():  # a NaN here would become NaN weights and no memories, silently
            bad = ~np.isfinite(np.asarray(v, dtype=np.float64)).reshape(len(v), -1).all(axis=1)
            if bad.any():
                raise CNError(f"the model ({self.checkpoint}) gave NaN or inf {name} for sample {int(np.argmax(bad))}; "
                              "check the input is z-scored fMRI of this subject, or retrain if the checkpoint is damaged")
        return preds

    def retrieve(self, preds: dict, k: int, where: str | None = None, names: list[str] | None = None,
                 uniform_router: bool = False, exclude=None):
        from cineneuron.decode.mom import retrieve

        if uniform_router:
            preds = {**preds, "w": np.full_like(preds["w"], 1 / 3)}
        return retrieve(self.store, preds, k, where=pool_where(self.cfg, where), exclude=exclude,
                        exact=self.cfg.decode.exact, sample_names=names, guard=pool_guard(self.cfg))


def run_query(store, cfg: RootConfig, fmri: str, subject: str, *, dataset: str | None = None,
              out: str | None = None, where: str | None = None) -> dict:
    from cineneuron.decode.base import create_decoder
    from cineneuron.decode.video_io import write_mp4

    combined = pool_where(cfg, where)  # a bad filter is refused before any model loads
    if out and cfg.decode.decoder == "wan":
        from cineneuron.decode.wan_decoder import wan_config

        wan_config(cfg.decode, store.dims["cond"])  # refuse bad frames/sizes before any model loads
    rec = Reconstructor(store, cfg, subject, dataset)
    x = rec.load(fmri)
    names = [f"{Path(fmri).name}[{i}]" for i in range(len(x))]
    preds = rec.predict(x)
    results = rec.retrieve(preds, cfg.decode.top_k, where, names)
    videos: list[str | None] = [None] * len(results)
    if out:
        decoder = create_decoder(cfg.decode, store=store, reconstructor=rec)
        # The wan decoder fuses each query's fMRI embedding F (preds["F"]) with its memories.
        frames = decoder.decode(store, results, preds=preds)
        outp = Path(out)
        for i, f in enumerate(frames):
            p = outp if len(frames) == 1 else outp.with_name(f"{outp.stem}_{i}{outp.suffix or '.mp4'}")
            videos[i] = str(write_mp4(f, p, cfg.decode.fps))
    return {
        "subject": rec.subject, "dataset": rec.dataset, "checkpoint": str(rec.checkpoint),
        "store_version": store.version, "decoder": cfg.decode.decoder, "top_k": cfg.decode.top_k,
        "where": combined,
        "queries": [{**r.to_dict(), "video": v} for r, v in zip(results, videos)],
    }
