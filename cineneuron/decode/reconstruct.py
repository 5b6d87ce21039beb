"""fMRI in, memories and videos out: the `Reconstructor` pipeline (what `cn query` runs).

    rec = Reconstructor(store, cfg, subject="1")
    out = rec(voxels_or_path, out="x.mp4")

`__call__` checks its inputs first, then runs the numbered steps: Brain Model + router, MoM
retrieval, decoding, writing the videos. Its dict is the stable output of `cn query --json`
(documented in the README):
{"subject", "dataset", "checkpoint", "store_version", "decoder", "top_k", "where",
 "queries": [{"sample", "weights": {"txt", "img", "act"},
              "memories": [{"clip_id", "source", "caption", "score", "cos_txt", "cos_img", "cos_act",
                            "labels", "video", "start_s", "end_s"}], "video": path or null}]}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cineneuron.config import RootConfig
from cineneuron.decode.inputs import check_voxels, load_fmri_file
from cineneuron.errors import CNError
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
        self._decoder = None

    @classmethod
    def from_store(cls, uri: str, subject: str, config: str | Path | None = None, **overrides) -> "Reconstructor":
        """Open the store at `uri` with a config file and `section.key` overrides, and load the subject's model."""
        from cineneuron.config import load_config
        from cineneuron.store import Store

        cfg = load_config(config, {**overrides, "store.uri": str(uri)})
        return cls(Store.from_config(cfg.store), cfg, subject)

    # ------------------------------------------------------------ the steps, one by one
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

    def decoder(self):
        """The configured decoder; built once. Building checks the query's settings against the
        trained run's and loads nothing heavy."""
        from cineneuron.decode.base import create_decoder

        if self._decoder is None:
            self._decoder = create_decoder(self.cfg.decode, store=self.store, reconstructor=self)
        return self._decoder

    # ------------------------------------------------------------ the pipeline
    def check_inputs(self, fmri, out: str | Path | None, where: str | None = None) -> tuple[np.ndarray, list[str]]:
        """(voxels (N, n_tr, V), sample names), or one CNError before any work."""
        pool_where(self.cfg, where)  # a filter that is not one condition over clips columns
        if out is not None:
            if Path(out).suffix.lower() != ".mp4":
                raise CNError(f"--out must name an .mp4 file (got {out}); reconstructions are written as H.264 mp4")
            if self.cfg.decode.decoder == "wan":
                from cineneuron.decode.wan_decoder import wan_config

                wan_config(self.cfg.decode, self.store.dims["cond"])  # bad frames/sizes, before any model loads
            self.decoder()
        if isinstance(fmri, (str, Path)):
            x, stem = self.load(fmri), Path(fmri).name
        else:
            mask = self.store.subject_mask(self.dataset, self.subject)
            x, stem = check_voxels(fmri, self.sub.n_tr, self.sub.n_voxels, mask), "fmri"
        return x, [f"{stem}[{i}]" for i in range(len(x))]

    def __call__(self, fmri, *, out: str | Path | None = None, where: str | None = None) -> dict:
        """fmri: a file (.npy, .npz, .h5, .nii) or an array; out: an .mp4 path (one per sample
        when several, `x_0.mp4`, ...), or None for memories only. Returns the `cn query --json` dict."""
        # 1. check the inputs (and the decoder's settings against its trained run)
        x, names = self.check_inputs(fmri, out, where)
        # 2. Brain Model + router: head outputs, class probabilities, weights w and F per sample
        preds = self.predict(x)
        # 3. Mixture-of-Memories retrieval from the pool (test clips never)
        results = self.retrieve(preds, self.cfg.decode.top_k, where, names)
        # 4. decode the memories into one video per sample, and 5. write them
        videos = self._write(self.decoder().decode(self.store, results, preds=preds), out) if out else [None] * len(results)
        return {
            "subject": self.subject, "dataset": self.dataset, "checkpoint": str(self.checkpoint),
            "store_version": self.store.version, "decoder": self.cfg.decode.decoder, "top_k": self.cfg.decode.top_k,
            "where": pool_where(self.cfg, where),
            "queries": [{**r.to_dict(), "video": v} for r, v in zip(results, videos)],
        }

    def _write(self, frames: list[np.ndarray], out: str | Path) -> list[str]:
        from cineneuron.frames import write_mp4

        outp = Path(out)
        paths = [outp] if len(frames) == 1 else [outp.with_name(f"{outp.stem}_{i}{outp.suffix}") for i in range(len(frames))]
        return [str(write_mp4(f, p, self.cfg.decode.fps)) for f, p in zip(frames, paths)]


def run_query(store, cfg: RootConfig, fmri: str, subject: str, *, dataset: str | None = None,
              out: str | None = None, where: str | None = None) -> dict:
    """`cn query`: the Reconstructor of `subject` on the fMRI file `fmri`."""
    if out and cfg.decode.decoder == "wan":
        from cineneuron.decode.wan_decoder import wan_config

        wan_config(cfg.decode, store.dims["cond"])  # refuse bad frames/sizes before the Brain Model loads
    pool_where(cfg, where)  # a bad filter is refused before any model loads
    return Reconstructor(store, cfg, subject, dataset)(fmri, out=out, where=where)
