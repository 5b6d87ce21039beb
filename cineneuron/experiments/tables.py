"""Aggregate `cn experiment` rows over seeds, judge the paper's claims, write the report.

Each cell: mean ± std over seeds of the per-seed value. Rows compared with the table's full
model (same samples, same seed) also get the paired difference with a 95 % bootstrap CI over
the samples of all seeds pooled (pairs stay within one seed).
"""

from __future__ import annotations


import numpy as np

from cineneuron.experiments.rows import CLAIMS, TABLES

METRICS = ("fmri_to_clip", "clip_to_fmri", "same_superclass", "same_action", "same_kind", "label_vote",
           "ssim", "psnr", "epe", "dd_gap")
LABELS = {"fmri_to_clip": "fMRI→clip", "clip_to_fmri": "clip→fMRI", "same_superclass": "superclass",
          "same_action": "action", "same_kind": "kind", "label_vote": "label vote", "ssim": "SSIM", "psnr": "PSNR",
          "epe": "EPE ↓", "dd_gap": "DD gap ↓"}


def _paired(rows_a: list[dict], rows_b: list[dict], metric: str, seed: int = 0) -> dict:
    from cineneuron.eval.semantic import paired_bootstrap_diff

    a, b = [], []
    for ra, rb in zip(rows_a, rows_b):
        if ra["samples"] != rb["samples"]:
            raise ValueError(f"rows {ra['label']!r} and {rb['label']!r} were measured on different samples")
        x, y = np.asarray(ra["per_sample"][metric]), np.asarray(rb["per_sample"][metric])
        ok = np.isfinite(x) & np.isfinite(y)
        a.append(x[ok])
        b.append(y[ok])
    return paired_bootstrap_diff(np.concatenate(a), np.concatenate(b), seed=seed)


def _stat(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    return {"mean": float(v.mean()) if v.size else None, "std": float(v.std(ddof=1)) if v.size > 1 else None,
            "seeds": v.tolist()}


def aggregate_table(name: str, by_seed: list[list[dict]]) -> dict:
    t = TABLES[name]
    rows = []
    for j, row in enumerate(t.rows):
        rs = [seed_rows[j] for seed_rows in by_seed]
        ref = [seed_rows[t.ref] for seed_rows in by_seed]
        metrics = {}
        for m in METRICS:
            metrics[m] = {**_stat([np.nanmean(r["per_sample"][m]) if np.isfinite(r["per_sample"][m]).any() else None
                                   for r in rs]),
                          "chance": _stat([r["chance"][m] for r in rs])["mean"],
                          "diff_vs_full": None if j == t.ref else _paired(rs, ref, m)}
        for m in rs[0]["nway"]:
            metrics[m] = {**_stat([r["nway"][m]["value"] for r in rs]), "chance": rs[0]["nway"][m]["chance"],
                          "diff_vs_full": None}
        rows.append({"label": row.label, "variant": row.variant, "mode": row.mode, "pool": row.pool,
                     "subset": row.subset, "noise": row.noise, "n": [r["n"] for r in rs],
                     "pool_size": [r["pool_size"] for r in rs], "checkpoints": [r["checkpoint"] for r in rs],
                     "metrics": metrics})
    out = {"paper": t.paper, "title": t.title, "note": t.note, "ref": t.rows[t.ref].label, "rows": rows}
    if name == "pool":  # no retraining between rows: one checkpoint per seed across the table
        out["same_checkpoint"] = all(len({r["checkpoints"][s] for r in rows}) == 1 for s in range(len(by_seed)))
    return out


def verdict(ci: dict, kind: str) -> str:
    if ci is None or ci.get("n", 0) == 0 or not np.isfinite(ci["low"]):
        return "not measured"
    if kind == "robust":
        return "reproduced (no significant loss)" if ci["low"] <= 0 <= ci["high"] or ci["low"] > 0 else "not reproduced (significant loss)"
    if ci["low"] > 0:
        return "reproduced"
    if ci["high"] < 0:
        return "not reproduced (reversed)"
    return "within noise"


def judge_claims(per_seed: dict, only: list[str]) -> list[dict]:
    out = []
    seeds = list(per_seed)
    for table, better, worse, metric, claim, kind in CLAIMS:
        if table not in only:
            continue
        ci = _paired([per_seed[s][table][better] for s in seeds], [per_seed[s][table][worse] for s in seeds], metric)
        out.append({"table": table, "claim": claim, "metric": metric, "better": TABLES[table].rows[better].label,
                    "worse": TABLES[table].rows[worse].label, "diff": ci, "verdict": verdict(ci, kind)})
    return out


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")


def aggregate_interpretation(interp: dict) -> dict:
    """Shares per variant (mean and 95 % t-CI over seeds) and the checks against the planted types."""
    seeds = list(interp)
    variants = [v for v in interp[seeds[0]] if not v.startswith("_")]
    per = {}
    for v in variants:
        per[v] = {}
        for key in interp[seeds[0]][v]:
            x = np.array([interp[s][v][key] for s in seeds])
            half = _t95(len(x)) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
            per[v][key] = {"mean": float(x.mean()), "low": float(x.mean() - half), "high": float(x.mean() + half),
                           "seeds": x.tolist()}
    checks = []
    for share, pairs, what in (("motion_share", (("base", "act"), ("cls", "full")), "action loss added"),
                               ("object_share", (("base", "cls"), ("act", "full")), "category loss added")):
        for a, b in pairs:
            if a in per and b in per:
                d = np.array(per[b][share]["seeds"]) - np.array(per[a][share]["seeds"])
                half = _t95(len(d)) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
                lo, hi = d.mean() - half, d.mean() + half
                if len(d) == 1:
                    ok = ("rises" if d[0] > 0 else "falls") + " (one seed, no CI)"
                else:
                    ok = "rises" if lo > 0 else "falls" if hi < 0 else "within noise"
                checks.append({"share": share, "from": a, "to": b, "what": what, "diff": float(d.mean()),
                               "low": float(lo), "high": float(hi), "outcome": ok})
    return {"per_variant": per, "checks": checks, "plots": [interp[s]["_plot"] for s in seeds]}


def aggregate(per_seed: dict, interp: dict, only: list[str]) -> dict:
    seeds = list(per_seed)
    return {"tables": {n: aggregate_table(n, [per_seed[s][n] for s in seeds]) for n in only},
            "claims": judge_claims(per_seed, only), "interpretation": aggregate_interpretation(interp)}
