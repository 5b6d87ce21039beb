"""`cn demo`: the whole method on the simulated world, end to end, on a CPU.

synth (a world whose training segments never show a bus, a cat or a laptop, and a second,
clips-only world that does) -> init -> ingest clips + fMRI -> stage 1 -> stage 2 -> evaluation
-> the memory pool grows with the second world, and we measure whether test samples of a
held-out category now find it in their top-k, with no training step.
Everything lands in one folder: the store, both worlds and the report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from cineneuron.atomic import atomic_path, atomic_write
from cineneuron.config import RootConfig, load_config
from cineneuron.store.scan import scan

# One category from each of three superclasses; each keeps a sibling in training (car, dog and
# bird, tv), as a new COCO category would. A whole superclass with its own voxels (all
# vehicles) is not recoverable: nothing in training says what those voxels mean (NOTES.md).
HOLDOUT = ["bus", "cat", "laptop"]
EXTRA_KINDS = HOLDOUT + ["car", "dog", "tv", "man", "chair"]  # held-out kinds among seen distractors
EXTRA_SOURCE = "synth-extra"


def demo_config(work: Path, overrides: dict | None = None) -> RootConfig:
    # Two response TRs (4-8 s after the clip): the simulated HRF peaks at about 5 s.
    base = {"store.uri": str(work / "store"), "train.epochs": 40, "train.stage2_epochs": 10,
            "train.batch_size": 64, "decode.top_k": 5, "fmri.cc2017.n_tr": 2}
    return load_config(None, {**base, **(overrides or {})})


def _step(log, msg: str):
    log(f"[demo] {msg}")


def _kinds(factors: str | None) -> set[str]:
    return set(json.loads(factors or "{}").get("kinds", []))


def mask_against_truth(mask: np.ndarray, truth_file: Path) -> dict:
    """How well the reliability selection found the voxels the simulator made responsive."""
    truth = np.load(truth_file)["responsive"].astype(bool)
    hit = int((mask & truth).sum())
    return {"kept": int(mask.sum()), "responsive": int(truth.sum()), "precision": hit / max(int(mask.sum()), 1),
            "recall": hit / max(int(truth.sum()), 1)}


# The router's own weights, then each space alone (fixed w_t, w_i, w_a): which space carries the gain.
EXPANSION_MODES = {"mom": None, "txt": (1.0, 0.0, 0.0), "img": (0.0, 1.0, 0.0), "act": (0.0, 0.0, 1.0)}


def heldout_samples(truth_rows: list[dict]) -> tuple[list[int], list[set[str]]]:
    """Test samples showing a held-out kind, and which held-out kinds each one shows."""
    idx = [i for i, t in enumerate(truth_rows) if _kinds(t["factors"]) & set(HOLDOUT)]
    return idx, [_kinds(truth_rows[i]["factors"]) & set(HOLDOUT) for i in idx]


def memory_expansion(rec, test: dict, preds: dict, truth_rows: list[dict], k: int, weights=None) -> dict:
    """Among test samples showing a held-out kind: how often the top-1 / top-k holds that same kind.

    weights: fixed (w_t, w_i, w_a) instead of the router's, to see which space carries the gain.
    """
    idx, wanted = heldout_samples(truth_rows)
    if not idx:
        return {"n": 0}
    sub = {key: v[idx] for key, v in preds.items()}
    if weights is not None:
        sub["w"] = np.tile(np.asarray(weights, np.float32), (len(idx), 1))
    res = rec.retrieve(sub, k, names=[test["sample_id"][i] for i in idx])
    ids = sorted({m.clip_id for r in res for m in r.memories})
    kinds = {r["clip_id"]: _kinds(r["factors"]) for r in rec.store.get_clips(ids, ["factors"]).to_pylist()} if ids else {}
    top1 = [bool(r.memories and kinds[r.memories[0].clip_id] & w) for r, w in zip(res, wanted)]
    topk = [any(kinds[m.clip_id] & w for m in r.memories) for r, w in zip(res, wanted)]
    return {"n": len(idx), "top1_heldout": float(np.mean(top1)), f"top{k}_heldout": float(np.mean(topk))}


def expansion_references(store, cfg, truth_rows: list[dict], k: int) -> tuple[float, dict]:
    """What the held-out hit rate is measured against, from one read of the pool:

    - chance: mean over samples of P(k memories drawn at random hold the sample's held-out kind);
    - ceiling: the rate with a perfect Brain Model, i.e. each held-out sample querying with its
      own clip's true embedding, per space. It bounds what any decoder can get from that space.
    """
    from cineneuron.decode.mom import MODS, split_mix
    from cineneuron.decode.reconstruct import pool_where

    idx, wanted = heldout_samples(truth_rows)
    if not idx:
        return float("nan"), {}
    pool = scan(store.clips, ["mix", "factors"], pool_where(cfg, None)).to_pylist()
    kinds = [_kinds(r["factors"]) for r in pool]
    chance = float(np.mean([1 - (1 - np.mean([bool(p & w) for p in kinds])) ** k for w in wanted]))
    mem = split_mix(np.array([r["mix"] for r in pool], np.float32), store.preset.space_dims())
    own = split_mix(np.array([truth_rows[i]["mix"] for i in idx], np.float32), store.preset.space_dims())
    ceiling = {}
    for name, q, m in zip(MODS, own, mem):
        top = np.argsort(-(q @ m.T), axis=1)[:, :k]  # (n, k)
        ceiling[name] = float(np.mean([any(kinds[j] & w for j in row) for row, w in zip(top, wanted)]))
    return chance, ceiling


class _Timer:
    """Wall time per demo step, reported in the summary."""

    def __init__(self):
        self.t0, self.s = time.perf_counter(), {}

    def __call__(self, name, fn):
        t = time.perf_counter()
        out = fn()
        self.s[name] = round(time.perf_counter() - t, 1)
        return out


def _simulate(work: Path, seed: int, bar, timed) -> tuple[Path, Path]:
    from cineneuron.sources.synth import KINDS, generate

    world, extra = work / "world", work / "world-extra"
    with bar("synth", "items") as p:
        timed("synth", lambda: generate(str(world), size="demo", subjects=1, seed=seed, holdout_kinds=HOLDOUT,
                                        progress=lambda a, t, w="": p(a, t)))
    # Same frame size and rate as the first world, so only the content differs.
    timed("synth_extra", lambda: generate(str(extra), size="demo", clips=150, subjects=0, seed=seed + 1,
                                          kinds=[k for k in KINDS if k in EXTRA_KINDS]))
    return world, extra


def _ingest_world(store, cfg: RootConfig, world: Path, opts, log, bar, timed) -> dict:
    from cineneuron.ingest.clips import ingest_clips
    from cineneuron.ingest.fmri import ingest_subject
    from cineneuron.sources import get_source

    with bar("ingest", "clips") as p:
        rep = timed("ingest", lambda: ingest_clips(store, get_source("synth")(str(world)), opts, progress=p))
    log(rep.summary())
    fm = timed("ingest_fmri", lambda: ingest_subject(store, "synth", str(world), "1", cfg))
    log(fm.summary())
    mask_truth = mask_against_truth(store.subject_mask("synth", "1"), world / "truth" / "subject1.npz")
    log(f"[demo] reliability mask vs the simulator's responsive voxels: precision {mask_truth['precision']:.3f}, "
        f"recall {mask_truth['recall']:.3f} ({mask_truth['kept']} kept, {mask_truth['responsive']} responsive)")
    return mask_truth


def _wan_toy_sample(store, cfg: RootConfig, work: Path, log, timed) -> None:
    from cineneuron.brain.data import load_split
    from cineneuron.decode.reconstruct import run_query
    from cineneuron.train.stage2_wan import train_stage2_wan

    log("[demo] Wan at toy size with random weights: its videos are noise, not reconstructions")
    wcfg = cfg.model_copy(update={"decode": cfg.decode.model_copy(update={"decoder": "wan", "wan_toy": True, "num_frames": 9, "height": 32, "width": 32, "steps": 2})})
    timed("stage2_wan", lambda: train_stage2_wan(store, wcfg, "1"))
    sample = work / "wan_query.npy"
    first = load_split(store, "synth", "1", "test", where="repeat = -1")
    atomic_write(sample, lambda p: np.save(p, first["voxels"][:1]))
    out = run_query(store, wcfg, str(sample), "1", out=str(work / "report" / "wan_toy_sample.mp4"))
    log(f"[demo] Wan (toy weights, noise) wrote {out['queries'][0]['video']}: 9 frames at 32x32")


def _expansion(store, cfg: RootConfig, extra: Path, opts, log, timed) -> tuple[dict, dict, dict]:
    """Held-out categories before and after the clips-only world joins the pool (no training)."""
    from cineneuron.brain.data import load_split
    from cineneuron.decode.reconstruct import Reconstructor
    from cineneuron.ingest.clips import ingest_clips
    from cineneuron.sources import get_source

    rec = Reconstructor(store, cfg, "1")
    test = load_split(store, rec.dataset, "1", "test", where="repeat = -1")
    preds = rec.predict(test["voxels"])
    truth = store.get_clips(test["clip_id"], ["factors", "mix"]).to_pylist()
    k = cfg.decode.top_k
    before = {m: memory_expansion(rec, test, preds, truth, k, w) for m, w in EXPANSION_MODES.items()}
    rep2 = timed("ingest_extra", lambda: ingest_clips(store, get_source("synth")(str(extra), source_name=EXTRA_SOURCE, split="pool"), opts))
    log(rep2.summary())
    after = {m: memory_expansion(rec, test, preds, truth, k, w) for m, w in EXPANSION_MODES.items()}
    after["chance"], after["ceiling"] = expansion_references(store, cfg, truth, k)
    return before, after, test


QUERY_FILE = "query_subject1.npy"  # a few test samples, so `cn query` has something to read


def write_example_query(work: Path, test: dict, n: int = 3) -> Path:
    """Save the first n averaged test samples of subject 1 for the next commands to query with."""
    path = work / QUERY_FILE
    atomic_write(path, lambda p: np.save(p, np.asarray(test["voxels"][:n], dtype=np.float32)))  # (n, n_tr, V)
    return path


def next_steps(work: Path, query: Path) -> str:
    store = work / "store"
    return "\n".join([
        "[demo] next: query the trained subject with test samples it never trained on",
        f"  cn query --fmri {query} --subject 1 --store {store} --out x.mp4",
        f"  cn query --fmri {query} --subject 1 --store {store} --where \"source = 'synth-extra'\" --json",
        "  or from Python:",
        f"    import cineneuron as cn",
        f"    rec = cn.Reconstructor.from_store('{store}', subject='1')",
        f"    out = rec(np.load('{query}'), out='x.mp4')   # memories and videos per sample",
    ])


def run_demo(work: str | Path, *, log=print, progress_factory=None, overrides: dict | None = None,
             decoder: str = "replay", seed: int = 0) -> dict:
    from cineneuron.eval.run import evaluate_subject
    from cineneuron.ingest.api import ingest_options
    from cineneuron.store import Store
    from cineneuron.train.stage1 import train_stage1
    from cineneuron.train.stage2 import train_stage2

    bar = progress_factory or (lambda *a, **k: _NullBar())
    work = Path(work)
    cfg = demo_config(work, overrides)
    timed = _Timer()
    _step(log, f"1/7 simulating a world ({', '.join(HOLDOUT)} held out of training) and a clips-only world with them, in {work}")
    world, extra = _simulate(work, seed, bar, timed)
    _step(log, "2/7 creating the store (classic preset) and ingesting clips + fMRI")
    store = Store.from_config(cfg.store, create_preset="classic")
    opts = ingest_options(cfg)
    mask_truth = _ingest_world(store, cfg, world, opts, log, bar, timed)
    _step(log, "3/7 stage 1: Brain Model from the store")
    with bar("stage 1", "steps") as p:
        s1 = timed("stage1", lambda: train_stage1(store, cfg, "1", progress=p))
    _step(log, "4/7 stage 2: the MoM router")
    with bar("stage 2", "steps") as p:
        timed("stage2", lambda: train_stage2(store, cfg, "1", progress=p))
    if decoder == "wan":
        _wan_toy_sample(store, cfg, work, log, timed)
    _step(log, "5/7 evaluation on the test set (report folder)")
    report_dir = work / "report"
    with bar("eval", "stages") as p:
        ev = timed("eval", lambda: evaluate_subject(store, cfg, "1", out_dir=str(report_dir), progress=p))
    _step(log, f"6/7 memory expansion: ingest {EXTRA_SOURCE} (clips only), no training step")
    before, after, test = _expansion(store, cfg, extra, opts, log, timed)
    _step(log, "7/7 summary")
    summary = summarize(s1, ev, before, after, cfg.decode.top_k)
    summary["voxel_mask_vs_truth"] = mask_truth
    summary["timings_s"] = {**timed.s, "total": round(time.perf_counter() - timed.t0, 1)}
    write_summary(summary, report_dir, log)
    log(f"[demo] report: {report_dir}  (store: {cfg.store.uri})")
    log(next_steps(work, write_example_query(work, test)))
    return summary


def write_summary(summary: dict, report_dir: Path, log) -> None:
    from cineneuron.atomic import atomic_write_text

    table = summary_table(summary)
    atomic_write_text(report_dir / "demo_summary.md", table + "\n")
    plot_summary(summary, report_dir / "plots" / "demo_summary.png")
    summary["html"] = demo_html(report_dir, table)
    atomic_write_text(report_dir / "demo_summary.json", json.dumps(summary, indent=2))
    log(table)
    log(f"[demo] HTML report: {Path(summary['html']).resolve().as_uri()}")


def summarize(s1, ev, before: dict, after: dict, k: int) -> dict:
    r, b = ev["results"], ev["baselines"]
    ridge = s1.ridge
    mom, txt = r["mom"], b["text-only"]["mom"]
    return {
        "n_test": ev["n_test"],
        "chance_retrieval": r["retrieval"]["fmri_to_clip"]["chance"],
        "pool_size": r["retrieval"]["fmri_to_clip"]["pool_size"],
        "stage1_retrieval": {d: r["retrieval"][d]["value"] for d in ("fmri_to_clip", "clip_to_fmri")},
        "ridge_retrieval": {d: ridge.get(f"img_{d}") for d in ("fmri_to_clip", "clip_to_fmri")},
        "mom": {"top1_same_superclass": mom["top1_same_superclass"]["value"], "top1_same_action": mom["top1_same_action"]["value"]},
        "text_only": {"top1_same_superclass": txt["top1_same_superclass"]["value"], "top1_same_action": txt["top1_same_action"]["value"]},
        "mom_minus_text_only": {m: {k: r["mom_minus_text_only"][m][k] for k in ("value", "low", "high", "n")}
                                for m in ("top1_same_superclass", "top1_same_action")},
        "router": r["router"],
        "ssim_rgb": r["ssim"]["rgb"]["value"], "psnr_rgb": r["psnr"]["rgb"]["value"],
        "memory_expansion": {"before": before, "after": after, "k": k},
    }


def summary_table(s: dict) -> str:
    f = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
    me, k = s["memory_expansion"], s["memory_expansion"]["k"]

    def d(metric: str) -> str:
        x = s["mom_minus_text_only"][metric]
        return f"{x['value']:+.3f} [{x['low']:+.3f}, {x['high']:+.3f}]"

    rows = [
        "| what | fMRI→clip / superclass | clip→fMRI / action |",
        "| --- | --- | --- |",
        f"| stage-1 retrieval top-1 of {s['pool_size']} (chance {s['chance_retrieval']:.3f}) | {f(s['stage1_retrieval']['fmri_to_clip'])} | {f(s['stage1_retrieval']['clip_to_fmri'])} |",
        f"| ridge baseline retrieval | {f(s['ridge_retrieval']['fmri_to_clip'])} | {f(s['ridge_retrieval']['clip_to_fmri'])} |",
        f"| MoM top-1 memory: same superclass / same action | {f(s['mom']['top1_same_superclass'])} | {f(s['mom']['top1_same_action'])} |",
        f"| text-only top-1 baseline | {f(s['text_only']['top1_same_superclass'])} | {f(s['text_only']['top1_same_action'])} |",
        f"| MoM minus text-only, same samples [95% bootstrap CI] | {d('top1_same_superclass')} | {d('top1_same_action')} |",
        f"| router weights mean (txt, img, act) | {', '.join(f'{v:.2f}' for v in s['router']['mean'].values())} | spread (std) {', '.join(f'{v:.3f}' for v in s['router']['std'].values())} |",
        f"| replay SSIM / PSNR (rgb) | {f(s['ssim_rgb'])} | {s['psnr_rgb']:.2f} dB |",
    ]
    b, a = me["before"], me["after"]
    for name in EXPANSION_MODES:
        rows.append(f"| held-out category in top-{k} ({name}), before -> after ingesting {EXTRA_SOURCE} (n={b[name].get('n', 0)}) | "
                    f"{f(b[name].get(f'top{k}_heldout'))} -> {f(a[name].get(f'top{k}_heldout'))} (random {k}: {f(a.get('chance'))}) | "
                    f"top-1: {f(b[name].get('top1_heldout'))} -> {f(a[name].get('top1_heldout'))} |")
    if a.get("ceiling"):
        rows.append(f"| ceiling: each held-out sample queries with its own clip's true embedding (text, image, action) | "
                    f"{', '.join(f(v) for v in a['ceiling'].values())} | a perfect Brain Model's top-{k} |")
    return "\n".join(rows)


def demo_html(report_dir: Path, table: str) -> str:
    """The eval's index.html with the demo's summary table and plot first."""
    from cineneuron.eval.html import Section, eval_index

    lines = [ln for ln in table.splitlines() if ln.startswith("|") and not ln.startswith("| ---")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    first = Section("Demo summary", [], [(cells[0], cells[1:])],
                    images=[(str(report_dir / "plots" / "demo_summary.png"), "demo summary")])
    return str(eval_index(report_dir, title="CineNeuron demo", before=[first]))


def plot_summary(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    k = s["memory_expansion"]["k"]
    me = s["memory_expansion"]
    labels = ["stage-1 fMRI→clip", "ridge fMRI→clip", "MoM superclass", "text-only superclass", "MoM action", "text-only action",
              f"held-out top-{k} before", f"held-out top-{k} after"]
    vals = [s["stage1_retrieval"]["fmri_to_clip"], s["ridge_retrieval"]["fmri_to_clip"], s["mom"]["top1_same_superclass"],
            s["text_only"]["top1_same_superclass"], s["mom"]["top1_same_action"], s["text_only"]["top1_same_action"],
            me["before"]["mom"].get(f"top{k}_heldout", 0), me["after"]["mom"].get(f"top{k}_heldout", 0)]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(range(len(vals)), [v or 0 for v in vals], color=["C0", "C7", "C0", "C7", "C0", "C7", "C7", "C2"])
    ax.axhline(s["chance_retrieval"], ls="--", c="k", lw=0.8, label="retrieval chance")
    ax.set_xticks(range(len(vals)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("CineNeuron demo on the simulated world")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


class _NullBar:
    def __enter__(self):
        return lambda *a, **k: None

    def __exit__(self, *exc):
        return False
