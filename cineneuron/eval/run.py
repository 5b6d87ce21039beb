"""`cn eval`: reconstruct a subject's test set and compute every metric it can.

Brain retrieval (stage-1 heads) and MoM retrieval are measured beside two baselines computed
the same way: a closed-form ridge from fMRI, and text-only retrieval (the paper's ablation).
Pixel and motion metrics compare the replay reconstruction with the ground-truth clip's frames
at the store's preview resolution. Metrics that need classifier or CLIP/DINO weights are
skipped with a notice unless those weights are given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from cineneuron.config import RootConfig

OBJECT_FREE = {"indoor", "outdoor", "others"}  # scene words: a match on these alone is weak


@dataclass
class EvalModels:
    """Local weight paths for the classifier- and feature-based metrics (all optional)."""

    videomae: str | None = None
    vit: str | None = None
    clip: str | None = None
    dinov2: str | None = None
    raft: str | None = None


def _object_labels(labels) -> set[str]:
    return set(labels) - OBJECT_FREE


def _rate(hits: list[bool], variant: str, chance: float | None = None) -> dict:
    n = len(hits)
    v = float(np.mean(hits)) if n else float("nan")
    return {"value": v, "std": float(np.sqrt(v * (1 - v) / n)) if n else float("nan"), "n": n,
            "chance": chance, "variant": variant}


def _perm_chance(pairs: list[tuple], hit, n_perm: int = 100, seed: int = 0) -> float | None:
    """Chance of a hit when truths are randomly re-paired with the retrieved memories."""
    if not pairs:
        return None
    rng = np.random.default_rng(seed)
    got, truth = [p[0] for p in pairs], [p[1] for p in pairs]
    return float(np.mean([np.mean([hit(g, truth[j]) for g, j in zip(got, rng.permutation(len(truth)))])
                          for _ in range(n_perm)]))


def _overlap(a, b) -> bool:
    return bool(a & b)


def _same(a, b) -> bool:
    return a == b


def _among(a, b) -> bool:
    return b in a


def semantic_pairs(store, results, truth_rows: list[dict], k: int) -> dict:
    """Per sample, (retrieved, truth) for each label metric, or None where the sample has no such
    truth; with the hit test and what the metric means."""
    ids = sorted({m.clip_id for r in results for m in r.memories})
    meta = {r["clip_id"]: r for r in store.get_clips(ids, ["factors", "labels"]).to_pylist()} if ids else {}
    sup, act, act_k = [], [], []
    for r, t in zip(results, truth_rows):
        t_obj, t_act = _object_labels(t["labels"]), json.loads(t["factors"] or "{}").get("action")
        acts = [json.loads(meta[m.clip_id]["factors"] or "{}").get("action") for m in r.memories]
        has_act = bool(r.memories) and t_act is not None
        sup.append((_object_labels(meta[r.memories[0].clip_id]["labels"]), t_obj) if r.memories and t_obj else None)
        act.append((acts[0], t_act) if has_act else None)
        act_k.append((acts, t_act) if has_act else None)
    return {"top1_same_superclass": (sup, _overlap, "top-1 memory shares an object superclass with the seen clip"),
            "top1_same_action": (act, _same, "top-1 memory has the seen clip's action (ground-truth factor)"),
            f"top{k}_has_action": (act_k, _among, f"the seen clip's action is among the top-{k} memories")}


def mom_metrics(store, results, truth_rows: list[dict], k: int) -> dict:
    """Semantic correctness of retrieved memories (label-based; no classifier needed).

    Chance re-pairs the seen clips with other queries' memories, which keeps both distributions.
    """
    from cineneuron.eval.semantic import label_accuracy_multihot
    from cineneuron.schemas.superclasses import label_vec

    out = {}
    for name, (pairs, hit, meaning) in semantic_pairs(store, results, truth_rows, k).items():
        valid = [p for p in pairs if p is not None]
        out[name] = _rate([hit(*p) for p in valid], meaning, _perm_chance(valid, hit))
    if results and all(len(r.memories) == k for r in results):
        mem_labels = np.array([[label_vec(m.labels) for m in r.memories] for r in results])  # (Q, K, 15)
        scores = np.array([[m.score for m in r.memories] for r in results])  # (Q, K)
        truth = np.array([label_vec(t["labels"]) for t in truth_rows])  # (Q, 15)
        out["label_vote"] = label_accuracy_multihot(mem_labels, scores, truth)
    return out


def paired_comparison(store, a_results, b_results, truth_rows: list[dict], k: int, seed: int = 0) -> dict:
    """Per label metric: rate(a) - rate(b) on the same samples, with a paired bootstrap 95% CI."""
    from cineneuron.eval.semantic import paired_bootstrap_diff

    pa, pb = semantic_pairs(store, a_results, truth_rows, k), semantic_pairs(store, b_results, truth_rows, k)
    out = {}
    for name, (pairs_a, hit, _) in pa.items():
        both = [(x, y) for x, y in zip(pairs_a, pb[name][0]) if x is not None and y is not None]
        r = paired_bootstrap_diff([hit(*x) for x, _ in both], [hit(*y) for _, y in both], seed=seed)
        out[name] = {**r, "variant": f"difference on the same samples, 95% bootstrap CI [{r['low']:+.3f}, {r['high']:+.3f}]"}
    return out


def _by_space(metrics: dict) -> dict:
    """Retrieval per target space (img, txt, act) x direction, as report leaves."""
    return {k: {"value": v, "chance": metrics.get("chance"), "pool_size": metrics.get("pool_size")}
            for k, v in metrics.items() if k.endswith(("_fmri_to_clip", "_clip_to_fmri"))}


def in_time_order(split: dict) -> dict:
    """The split's samples sorted by run and TR (sample ids read `...-{run}-t{TR}-r{rep}`,
    compared number by number), so contiguous retrieval blocks are contiguous in time."""
    import re

    def key(sid: str):
        return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", sid)]

    order = sorted(range(len(split["sample_id"])), key=lambda i: key(split["sample_id"][i]))
    return {k: ([v[i] for i in order] if isinstance(v, list) else v[np.asarray(order, dtype=int)])
            for k, v in split.items()}


def router_spread(results) -> dict:
    w = np.array([[r.weights["txt"], r.weights["img"], r.weights["act"]] for r in results])  # (Q, 3)
    return {"mean": dict(zip(("txt", "img", "act"), w.mean(0).round(4).tolist())),
            "std": dict(zip(("txt", "img", "act"), w.std(0).round(4).tolist()))}


def pixel_metrics(gts: list[np.ndarray], recons: list[np.ndarray]) -> dict:
    from cineneuron.eval.frames import psnr, ssim
    from cineneuron.eval.motion import dynamic_degree_gap, epe_videos

    res = gts[0].shape[1:3]
    return {
        "ssim": {"rgb": ssim(gts, recons, resolution=res, color="rgb"), "gray": ssim(gts, recons, resolution=res, color="gray")},
        "psnr": {"rgb": psnr(gts, recons, resolution=res, color="rgb"), "gray": psnr(gts, recons, resolution=res, color="gray")},
        "epe": {"farneback": epe_videos(gts, recons)},
        "dynamic_degree": dynamic_degree_gap(gts, recons),
    }


RECON_FILE = "reconstructions.npz"
METRIC_GROUP = {"ssim": "pixel", "psnr": "pixel", "epe": "motion", "dynamic_degree": "motion"}
METRIC_GROUPS = ("retrieval", "mom", "pixel", "motion", "clip_pcc", "dtc", "semantic")


def wants(metrics: list[str] | None, *groups: str) -> bool:
    return metrics is None or any(g in metrics for g in groups)


def reconstructions(store, cfg: RootConfig, rec, results, preds, out_dir: str | None) -> tuple[list[np.ndarray], bool]:
    """Decode every query, or reuse the reconstructions already in out_dir when they match."""
    from pathlib import Path

    from cineneuron.decode.base import create_decoder

    meta = json.dumps({"checkpoint": str(rec.checkpoint), "decoder": cfg.decode.decoder, "top_k": cfg.decode.top_k,
                       "temperature": cfg.decode.temperature, "store_version": store.version,
                       "samples": [r.sample for r in results]}, sort_keys=True)
    path = Path(out_dir) / RECON_FILE if out_dir else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            if str(z["meta"]) == meta:
                return [z[f"r{i}"] for i in range(len(results))], True
    videos = create_decoder(cfg.decode, store=store, reconstructor=rec).decode(store, results, preds=preds)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, meta=np.array(meta), **{f"r{i}": v for i, v in enumerate(videos)})
    return videos, False


def evaluate_subject(store, cfg: RootConfig, subject: str, *, dataset: str | None = None, split: str = "test",
                     out_dir: str | None = None, n_videos: int = 6, models: EvalModels | None = None,
                     metrics: list[str] | None = None, progress=None, protocol: str = "neuroclips") -> dict:
    """metrics: groups to compute (see METRIC_GROUPS); None computes every one it can.
    protocol: the retrieval subsets, neuroclips (contiguous blocks in time order) or mindeye2."""
    from cineneuron.brain.data import load_split, load_targets
    from cineneuron.eval.brain import evaluate
    from cineneuron.train.stage1 import ridge_baseline, test_targets
    from cineneuron.decode.replay import decode_jpegs
    from cineneuron.errors import CNError
    from cineneuron.eval.retrieval import DIRECTIONS, PROTOCOLS, retrieval_top1
    from cineneuron.decode.reconstruct import Reconstructor

    step = progress or (lambda *a, **k: None)
    if protocol not in PROTOCOLS:
        raise CNError(f"unknown retrieval protocol {protocol!r}; choose {' or '.join(PROTOCOLS)}")
    rec = Reconstructor(store, cfg, subject, dataset)
    test = load_split(store, rec.dataset, rec.subject, split, where="repeat = -1")
    if not test["clip_id"]:
        test = load_split(store, rec.dataset, rec.subject, split)
    if not test["clip_id"]:
        raise CNError(f"subject {subject} has no {split} samples to evaluate")
    test = in_time_order(test)  # the neuroclips protocol cuts contiguous blocks
    step(1, 6, "predict")
    targets = load_targets(store, test["clip_id"])
    tt = test_targets(targets, test["clip_id"])
    preds = rec.predict(test["voxels"])
    k = cfg.decode.top_k
    results: dict = {"dataset": rec.dataset, "notices": []}
    baselines: dict = {}
    if wants(metrics, "retrieval"):
        results["retrieval"] = {d: retrieval_top1(preds["img"], tt["img"], direction=d, return_ranks=True,
                                                  protocol=protocol)
                                for d in DIRECTIONS}
        results["retrieval_by_space"] = _by_space(evaluate(preds, tt, protocol=protocol))
        step(1, 6, "ridge")
        train = load_split(store, rec.dataset, rec.subject, "train")
        ridge, _ = ridge_baseline(train, load_targets(store, train["clip_id"] + test["clip_id"]), test, cfg.train.seed,
                                  protocol=protocol)
        baselines["ridge"] = {"retrieval": {d: {"value": ridge[f"img_{d}"]} for d in DIRECTIONS},
                              "retrieval_by_space": _by_space(ridge)}

    step(1, 6, "retrieve")
    truth_rows = store.get_clips(test["clip_id"], ["labels", "factors", "frames", "caption"]).to_pylist()
    names = test["sample_id"]
    mom = rec.retrieve(preds, k, names=names)
    results["router"] = router_spread(mom)
    if wants(metrics, "mom"):
        text_only = rec.retrieve({**preds, "w": np.tile([1.0, 0.0, 0.0], (len(names), 1))}, k, names=names)
        uniform = rec.retrieve(preds, k, names=names, uniform_router=True)
        results["mom"] = mom_metrics(store, mom, truth_rows, k)
        baselines["text-only"] = {"mom": mom_metrics(store, text_only, truth_rows, k)}
        baselines["uniform-router"] = {"mom": mom_metrics(store, uniform, truth_rows, k)}
        results["mom_minus_text_only"] = paired_comparison(store, mom, text_only, truth_rows, k, cfg.train.seed)

    step(1, 6, "decode")
    recon, reused = reconstructions(store, cfg, rec, mom, preds, out_dir)
    if reused:
        results["notices"].append(f"reused the reconstructions in {out_dir}/{RECON_FILE} (same checkpoint, decoder and pool)")
    gts = [decode_jpegs(r["frames"]) for r in truth_rows]
    if wants(metrics, "pixel", "motion"):
        pix = pixel_metrics(gts, recon)
        results.update({k: v for k, v in pix.items() if wants(metrics, METRIC_GROUP[k])})
    results["notices"] += optional_metrics(results, gts, recon, models or EvalModels(), metrics)

    step(1, 6, "report")
    report = _write_report(store, cfg, rec, out_dir, results, baselines, mom, gts, recon, truth_rows, n_videos) if out_dir else None
    step(1, 6, "done")
    return {"results": results, "baselines": baselines, "files": report, "n_test": len(names),
            "checkpoint": str(rec.checkpoint)}


def _write_report(store, cfg: RootConfig, rec, out_dir: str, results: dict, baselines: dict, mom, gts, recon,
                  truth_rows: list[dict], n_videos: int) -> dict:
    """metrics.json/.md, plots, grid.mp4 (ground truth | reconstruction | top memories) and index.html."""
    from cineneuron.decode.replay import ReplayDecoder
    from cineneuron.eval.html import eval_index
    from cineneuron.eval.report import write_report

    mem_frames = ReplayDecoder().memory_frames(store, [m.clip_id for r in mom[:n_videos] for m in r.memories[:3]])
    videos = [(gts[i], recon[i], [mem_frames[m.clip_id] for m in mom[i].memories[:3]],
               [truth_rows[i]["caption"], cfg.decode.decoder] + [m.caption for m in mom[i].memories[:3]])
              for i in range(min(n_videos, len(mom)))]
    report = write_report(out_dir, results, config={**cfg.model_dump(), "dataset": rec.dataset},
                          store_version=store.version, checkpoint=str(rec.checkpoint), baselines=baselines,
                          videos=videos)
    report["html"] = str(eval_index(out_dir))
    return report


def optional_metrics(results: dict, gts, recons, models: EvalModels, metrics: list[str] | None = None) -> list[str]:
    """CLIP-pcc, DTC and n-way accuracy, when their weights are given; else notices."""
    from cineneuron.eval import models as M
    from cineneuron.eval.frames import clip_pcc_videos, dtc_videos
    from cineneuron.eval.semantic import n_way_suite

    notices = []
    if not wants(metrics, "clip_pcc", "dtc", "semantic"):
        return []
    clip, note = M.load_clip(models.clip) if models.clip else (None, "skipped CLIP-pcc: no CLIP weights given (--clip FILE)")
    if clip:
        results["clip_pcc"] = {"adjacent": clip_pcc_videos(recons, clip, "adjacent"), "all": clip_pcc_videos(recons, clip, "all")}
    else:
        notices.append(note)
    dino, note = M.load_dinov2(models.dinov2) if models.dinov2 else (None, "skipped DTC: no DINOv2 weights given (--dinov2 DIR)")
    if dino:
        results["dtc"] = dtc_videos(recons, dino)
    else:
        notices.append(note)
    vmae, note = M.load_videomae(models.videomae) if models.videomae else (None, "skipped video n-way accuracy: no VideoMAE weights given (--videomae DIR)")
    if vmae:
        results.setdefault("semantic", {})["video"] = n_way_suite(vmae.predict_proba(recons), vmae.predict_proba(gts))
    else:
        notices.append(note)
    vit, note = M.load_vit(models.vit) if models.vit else (None, "skipped frame n-way accuracy: no ImageNet ViT weights given (--vit DIR)")
    if vit:
        results.setdefault("semantic", {})["frame"] = n_way_suite(vit.predict_proba_videos(recons), vit.predict_proba_videos(gts))
    else:
        notices.append(note)
    return [n for n in notices if n]
