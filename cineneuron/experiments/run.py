"""`cn experiment`: the paper's ablation tables on the simulated brain, one command, over seeds.

Per seed: build the worlds and the store, train once per training variant (experiments/setup),
then measure every row (experiments/rows) with the replay decoder and aggregate over seeds
(experiments/tables). Interpretation maps come from the same checkpoints (experiments/interpret).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cineneuron.errors import CNError
from cineneuron.experiments import measure as M
from cineneuron.experiments.rows import TABLES, Row, needed_variants
from cineneuron.experiments.setup import EXTERNAL, FULL, HOLDOUT, MAIN, QUICK, build_seed, file_hash
from cineneuron.store.lance_util import sql_list, sql_str


def pool_filters(store, seed: int) -> dict[str, str]:
    from cineneuron.store.scan import scan

    ids = sorted(scan(store.clips, ["clip_id"], f"source = {sql_str(MAIN)} AND split <> 'test'").column("clip_id").to_pylist())
    half = sorted(np.random.default_rng([seed, 5]).permutation(ids)[: len(ids) // 2].tolist())
    return {"half": f"source = {sql_str(MAIN)} AND clip_id IN ({sql_list(half)})",
            "base": f"source = {sql_str(MAIN)}",
            "ext1": f"source IN ({sql_list([MAIN, EXTERNAL[0]])})",
            "ext2": f"source IN ({sql_list([MAIN, *EXTERNAL])})"}


class SeedRun:
    """One seed's models, test set and caches; `row(Row)` measures one table row."""

    def __init__(self, setup, log=print):
        from cineneuron.brain.data import load_split, load_targets
        from cineneuron.decode.reconstruct import Reconstructor
        from cineneuron.decode.replay import decode_jpegs
        from cineneuron.train.stage1 import test_targets

        self.setup, self.store, self.log = setup, setup.store, log
        self.recs = {v: Reconstructor(self.store, c, "1") for v, c in setup.cfgs.items()}
        self.hash = {v: file_hash(r.checkpoint / "model.safetensors") for v, r in self.recs.items()}
        self.test = load_split(self.store, "synth", "1", "test", where="repeat = -1")
        self.tt = test_targets(load_targets(self.store, self.test["clip_id"]), self.test["clip_id"])
        self.truth = self.store.get_clips(self.test["clip_id"], ["labels", "factors", "frames", "caption"]).to_pylist()
        self.gts = [decode_jpegs(r["frames"]) for r in self.truth]
        self.flows = M.gt_flows(self.gts)
        self.ood = [i for i, t in enumerate(self.truth) if M.kinds_of(t["factors"]) & set(HOLDOUT)]
        self.where = pool_filters(self.store, setup.seed)
        self.pool_size = {k: self.store.clips.count_rows(f"({w}) AND split <> 'test'") for k, w in self.where.items()}
        self.probe = M.train_probe(self.store, f"({self.where['ext2']}) AND split <> 'test'", setup.seed)
        self.gt_proba = self.probe.proba(self.gts)
        self._preds: dict = {}
        self.k = next(iter(setup.cfgs.values())).decode.top_k

    def preds(self, variant: str, noise: float) -> dict:
        key = (variant, noise)
        if key not in self._preds:
            x = self.test["voxels"]
            if noise:
                sd = x.std(axis=0, keepdims=True)  # each voxel's (and TR's) sd over the test set
                rng = np.random.default_rng([self.setup.seed, 7, int(round(noise * 1000))])
                x = (x + rng.standard_normal(x.shape).astype(np.float32) * noise * sd).astype(np.float32)
            self._preds[key] = self.recs[variant].predict(x)
        return self._preds[key]

    def _query(self, row: Row, idx: list[int]) -> tuple[dict, int]:
        p = {k: v[idx] for k, v in self.preds(row.variant, row.noise).items()}
        w = p["w"].copy()
        if row.mode == "text":
            w[:] = (1.0, 0.0, 0.0)
        elif row.mode in ("no_img", "no_act"):
            w[:, 1 if row.mode == "no_img" else 2] = 0.0  # drop that space, keep the router's others
            w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
        p["w"] = w
        return p, 1 if row.mode == "text" else self.k

    def row(self, row: Row) -> dict:
        from cineneuron.decode.replay import ReplayDecoder
        from cineneuron.eval.retrieval import cosine_matrix
        from cineneuron.schemas.superclasses import label_vec

        idx = self.ood if row.subset == "ood" else list(range(len(self.truth)))
        if not idx:
            raise CNError(f"row {row.label!r}: no test samples in subset {row.subset}")
        p, k = self._query(row, idx)
        rec = self.recs[row.variant]
        res = rec.retrieve(p, k, where=self.where[row.pool], names=[self.test["sample_id"][i] for i in idx])
        truth = [self.truth[i] for i in idx]
        hits, chance = M.label_hits(self.store, res, truth)
        sim = cosine_matrix(p["img"], self.tt["img"][idx])  # (n, n) predictions x seen clips
        n = len(idx)
        hits["fmri_to_clip"] = (sim.argmax(1) == np.arange(n)).astype(float)
        hits["clip_to_fmri"] = (sim.argmax(0) == np.arange(n)).astype(float)
        chance["fmri_to_clip"] = chance["clip_to_fmri"] = 1.0 / n
        hits["label_vote"], chance["label_vote"] = self._vote(res, truth, label_vec)
        recon = ReplayDecoder(rec.cfg.decode.temperature).decode(self.store, res)
        gts, flows = [self.gts[i] for i in idx], [self.flows[i] for i in idx]
        pix, pix_chance = M.pixel_scores(gts, recon, flows, np.random.default_rng(0).permutation(n))
        hits.update(pix)
        chance.update(pix_chance)
        nway = self._nway(recon, idx)
        return {"label": row.label, "variant": row.variant, "checkpoint": self.hash[row.variant], "n": n,
                "pool": row.pool, "pool_size": self.pool_size[row.pool], "per_sample": hits, "chance": chance,
                "nway": nway, "samples": [self.test["sample_id"][i] for i in idx]}

    def _vote(self, res, truth, label_vec) -> tuple[np.ndarray, float]:
        from cineneuron.eval.semantic import weighted_vote

        if any(len(r.memories) == 0 for r in res):
            return np.full(len(res), np.nan), float("nan")
        width = max(len(r.memories) for r in res)
        labels = np.zeros((len(res), width, len(label_vec([]))))
        scores = np.full((len(res), width), -np.inf)
        for q, r in enumerate(res):
            for j, m in enumerate(r.memories):
                labels[q, j], scores[q, j] = label_vec(m.labels), m.score
        vote = weighted_vote(labels, np.where(np.isfinite(scores), scores, -1e9))
        true = np.array([label_vec(t["labels"]) for t in truth])
        hit = np.where(true.sum(1) > 0, true[np.arange(len(res)), vote.argmax(1)] > 0, np.nan)
        perm = np.random.default_rng(0).permutation(len(res))
        return hit.astype(float), float(np.nanmean(np.where(true[perm].sum(1) > 0, true[perm, vote.argmax(1)] > 0, np.nan)))

    def _nway(self, recon, idx) -> dict:
        from cineneuron.eval.semantic import n_way_suite

        widest = len(self.probe.classes) - 2  # peer variant: the truth's top 3 plus n-1 others
        suite = n_way_suite(self.probe.proba(recon), self.gt_proba[idx], ways=(2, widest), seed=self.setup.seed)
        return {f"{w}_{v}": {"value": r["value"], "chance": r["chance"]} for w, d in suite.items() for v, r in d.items()}


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CNError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise CNError(f"--seeds needs distinct integers, got {text!r}")
    return seeds


def parse_only(text: str | None) -> list[str]:
    names = [s.strip() for s in text.split(",")] if text else list(TABLES)
    bad = [n for n in names if n not in TABLES]
    if bad:
        raise CNError(f"unknown experiment {bad[0]!r}; choose from {', '.join(TABLES)}")
    return list(dict.fromkeys(names))


def run_experiments(work, *, seeds: list[int], only: list[str], quick: bool = False, log=print) -> dict:
    from cineneuron.experiments.interpret import interpretation
    from cineneuron.experiments.report import write_outputs
    from cineneuron.experiments.tables import aggregate

    t0 = time.perf_counter()
    work = Path(work)
    _fresh(work, seeds)
    scale = QUICK if quick else FULL
    variants = needed_variants(only)
    per_seed, interp, timings, sample_videos = {}, {}, {}, []
    for seed in seeds:
        log(f"[experiment] seed {seed}: simulating, ingesting, training {', '.join(variants)}")
        setup = build_seed(work / f"seed{seed}", seed, scale, variants, log)
        t = time.perf_counter()
        run = SeedRun(setup, log)
        per_seed[seed] = {name: [run.row(r) for r in TABLES[name].rows] for name in only}
        interp[seed] = interpretation(run, work / "report" / "plots" / f"cortex_seed{seed}.png")
        timings[seed] = {**setup.timings, "measure": round(time.perf_counter() - t, 1)}
        log(f"[experiment] seed {seed}: measured in {timings[seed]['measure']:.0f} s")
        if seed == seeds[0]:  # the first seed's full model shows its reconstructions
            sample_videos = _sample_videos(run, work / "report" / "videos", seed)
    summary = aggregate(per_seed, interp, only)
    summary.update(seeds=seeds, quick=quick, scale=scale.__dict__, timings_s={**{str(s): t for s, t in timings.items()},
                   "total": round(time.perf_counter() - t0, 1)}, holdout=HOLDOUT, external=list(EXTERNAL))
    summary["files"] = write_outputs(work / "report", summary, sample_videos)
    log(f"[experiment] wall time {summary['timings_s']['total']:.0f} s; report: {summary['files']['html']}")
    return summary


def _fresh(work: Path, seeds: list[int]) -> None:
    """Refuse a non-empty folder that is not ours; clear the seed folders we are about to rebuild."""
    import shutil

    ours = (work / "report").exists() or any(work.glob("seed*"))
    if work.exists() and any(work.iterdir()) and not ours:
        raise CNError(f"{work} exists and is not a cn experiment folder; choose another --dir")
    for d in [work / f"seed{s}" for s in seeds] + [work / "report"]:
        if d.exists():
            shutil.rmtree(d)


def _sample_videos(run: SeedRun, out: Path, seed: int, n: int = 4) -> list[dict]:
    """Ground truth | full-model reconstruction | top memory, as H.264 mp4s for the HTML report."""
    from cineneuron.decode.replay import ReplayDecoder
    from cineneuron.frames import side_by_side, write_mp4

    idx = list(range(min(n, len(run.truth))))
    p, k = run._query(Row("full"), idx)
    res = run.recs["full"].retrieve(p, k, where=run.where["base"])
    dec = ReplayDecoder(run.recs["full"].cfg.decode.temperature)
    recon = dec.decode(run.store, res)
    mem = dec.memory_frames(run.store, [r.memories[0].clip_id for r in res])
    videos = []
    for i, r in zip(idx, res):
        path = write_mp4(side_by_side([run.gts[i], recon[i - idx[0]], mem[r.memories[0].clip_id]],
                                      ["truth", "reconstruction", "top memory"]), out / f"seed{seed}_sample{i}.mp4")
        videos.append({"path": str(path), "caption": f"{run.truth[i]['caption']} -> {r.memories[0].caption}"})
    return videos
