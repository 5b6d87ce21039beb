"""One table row of `cn experiment`: retrieve, reconstruct with the replay decoder, measure.

Per-sample scores (hit or not, SSIM, PSNR, EPE, DD gap) are kept so that rows measured on the
same samples can be compared with a paired bootstrap; scalars (retrieval, n-way, label vote)
are summaries. Every metric carries its chance level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

PER_SAMPLE = ("same_superclass", "same_action", "same_kind", "ssim", "psnr", "epe", "dd_gap")
HIGHER_IS_BETTER = {"epe": False, "dd_gap": False}


def kinds_of(factors: str | None) -> set[str]:
    return set(json.loads(factors or "{}").get("kinds", []))


def primary_kind(factors: str | None) -> str | None:
    kinds = json.loads(factors or "{}").get("kinds", [])
    return kinds[0] if kinds else None


@dataclass
class Probe:
    """A linear probe on the store's visual features (image + motion encoders) predicting the
    object kind. It is trained on clips of the simulated world, held-out kinds included (as
    Kinetics classes are in VideoMAE's training), and scores any frames, ground truth or
    reconstruction, through the same encoders."""

    encoders: object
    classes: list[str]
    model: object

    def features(self, videos: list[np.ndarray]) -> np.ndarray:
        from cineneuron.store.rows import pooled_image, unit

        out = []
        for i in range(0, len(videos), 16):
            batch = np.stack(videos[i:i + 16])  # (B, T, H, W, 3) uint8
            img = pooled_image(self.encoders.image.encode_frames(batch))
            act = unit(self.encoders.action.encode_video(batch))
            out.append(np.concatenate([img, act], axis=1))
        return np.concatenate(out)

    def proba(self, videos: list[np.ndarray]) -> np.ndarray:
        return self.model.predict_proba(self.features(videos))  # (N, n_kinds)


def train_probe(store, where: str, seed: int) -> Probe:
    from sklearn.linear_model import LogisticRegression

    from cineneuron.decode.replay import decode_jpegs
    from cineneuron.store.scan import scan

    rows = scan(store.clips, ["frames", "factors"], where).to_pylist()
    rows = [r for r in rows if primary_kind(r["factors"])]
    enc = store.encoders()
    enc.image.build()
    enc.action.build()
    probe = Probe(enc, [], None)
    x = probe.features([decode_jpegs(r["frames"]) for r in rows])
    y = [primary_kind(r["factors"]) for r in rows]
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(x, y)
    probe.model, probe.classes = model, list(model.classes_)
    return probe


def _perm_chance(got: list, truth: list, hit, seed: int = 0, n_perm: int = 100) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([np.mean([hit(g, truth[j]) for g, j in zip(got, rng.permutation(len(truth)))])
                          for _ in range(n_perm)]))


def label_hits(store, results, truth_rows: list[dict]) -> tuple[dict, dict]:
    """Per sample: does the top-1 memory share a superclass / the action / an object kind with the
    seen clip. Returns ({metric: (Q,) float, nan where undefined}, {metric: chance})."""
    ids = sorted({m.clip_id for r in results for m in r.memories})
    meta = {r["clip_id"]: r for r in store.get_clips(ids, ["factors", "labels"]).to_pylist()}
    from cineneuron.eval.run import _object_labels

    tests = {
        "same_superclass": (lambda r: _object_labels(r["labels"]), lambda a, b: bool(a & b)),
        "same_action": (lambda r: json.loads(r["factors"] or "{}").get("action"), lambda a, b: a == b),
        "same_kind": (lambda r: kinds_of(r["factors"]), lambda a, b: bool(a & b)),
    }
    hits, chance = {}, {}
    for name, (get, hit) in tests.items():
        got = [get(meta[r.memories[0].clip_id]) for r in results]
        truth = [get(t) for t in truth_rows]
        ok = [i for i, t in enumerate(truth) if t]
        v = np.full(len(results), np.nan)
        v[ok] = [float(hit(got[i], truth[i])) for i in ok]
        hits[name] = v
        chance[name] = _perm_chance([got[i] for i in ok], [truth[i] for i in ok], hit) if ok else float("nan")
    return hits, chance


def pixel_scores(gts: list, recons: list, gt_flows: list, shuffled: np.ndarray) -> tuple[dict, dict]:
    """Per video: SSIM, PSNR (rgb), EPE against the ground truth's flow, |DD(recon) - DD(gt)|;
    and their chance: each reconstruction scored against another sample's truth (`shuffled`)."""
    from cineneuron.eval.frames import psnr_frames, ssim_frames
    from cineneuron.eval.motion import Farneback, _prepare, dynamic_degree_flow, epe

    est = Farneback()
    dd_gt = [dynamic_degree_flow(f)["value"] for f in gt_flows]
    own, other = ({k: [] for k in ("ssim", "psnr", "epe", "dd_gap")} for _ in range(2))
    for i, r in enumerate(recons):
        fr = est.flow(_prepare(gts[i], r, None)[1])
        dd = dynamic_degree_flow(fr)["value"]
        for out, j in ((own, i), (other, int(shuffled[i]))):
            out["ssim"].append(float(ssim_frames(gts[j], r).mean()))
            out["psnr"].append(float(psnr_frames(gts[j], r).mean()))
            out["epe"].append(epe(fr, gt_flows[j]))
            out["dd_gap"].append(abs(dd - dd_gt[j]))
    return {k: np.array(v) for k, v in own.items()}, {k: float(np.mean(v)) for k, v in other.items()}


def gt_flows(gts: list) -> list:
    from cineneuron.eval.motion import Farneback, _prepare

    est = Farneback()
    return [est.flow(_prepare(g, g, None)[0]) for g in gts]
