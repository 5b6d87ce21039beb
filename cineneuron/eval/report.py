"""The evaluation report: metrics.json, metrics.md, PNG plots, grid.mp4, and the paper table.

`results` is a nested dict whose leaves are metric dicts with at least "value" (as every
function in `cineneuron.eval` returns) or plain numbers. Leaves are named by their dotted path,
e.g. {"retrieval": {"fmri_to_clip": {...}}} → "retrieval.fmri_to_clip". Two top-level keys are not
metrics: "notices" (strings, e.g. models skipped for missing weights) and "dataset".

Keys the paper table looks for (DESIGN section 7, cc2017):
retrieval.clip_to_fmri (the peers' "forward"), retrieval.fmri_to_clip (their "backward"),
semantic.video.2way.peer, semantic.video.50way.peer, clip_pcc.adjacent, dtc, ssim.rgb, psnr.rgb.

Retrieval directions: MindEye2 and NeuroClips rank with `batchwise_cosine_similarity`, which
returns the transposed matrix, so their "forward" ranks fMRI predictions for each clip
(clip→fMRI) and their "backward" ranks clips for each fMRI prediction. The paper's figures are
taken to follow NeuroClips' code (DESIGN §7 calls "forward" fMRI→clip, which is the other
direction in that code): each paper row names both. Their subsets are NeuroClips' 4
contiguous blocks of 300, so only our `neuroclips` protocol is set beside them.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cineneuron import __version__
from cineneuron.atomic import atomic_path, atomic_write_text

NOT_METRICS = ("notices", "dataset")
_PROTOCOL_TEXT = {"neuroclips": "contiguous blocks of 300 test clips in time order, as NeuroClips and the paper",
                  "mindeye2": "30 random subsets of 300, as MindEye2"}
SIMULATED = {"toy", "toyworld", "toy-world", "synthetic", "simulated", "sim", "simulator"}
PAPER_DATASET = "cc2017"


@dataclass(frozen=True)
class PaperFigure:
    """One figure of the paper (cc2017, mean of 3 subjects) and what ours must match to compare."""

    key: str
    label: str
    paper: float
    neuroclips: float | None = None
    variant: str = ""  # our result's variant must start with this
    pool: int | None = None  # retrieval: our pool size must equal this
    protocol: str | None = None  # retrieval: our subset protocol must be this
    resolution: tuple[int, int] | None = None  # pixel metrics: None = the paper's is not recorded
    pixel: bool = False


# The paper's 2-way/50-way are taken as video-based (VideoMAE): DESIGN §7 does not say which,
# and in NeuroClips' tables the video-based numbers are the higher pair, as these are.
PAPER_CC2017 = (
    PaperFigure("retrieval.clip_to_fmri", "retrieval top-1 of 300, peers' forward = ours clip_to_fmri", 0.283, 0.222,
                "top1-of-300, clip_to_fmri", pool=300, protocol="neuroclips"),
    PaperFigure("retrieval.fmri_to_clip", "retrieval top-1 of 300, peers' backward = ours fmri_to_clip", 0.262, 0.188,
                "top1-of-300, fmri_to_clip", pool=300, protocol="neuroclips"),
    PaperFigure("semantic.video.2way.peer", "2-way (video, peer)", 0.850, None, "peer: gt top-3 vs 1 random"),
    PaperFigure("semantic.video.50way.peer", "50-way (video, peer)", 0.240, None, "peer: gt top-3 vs 49 random"),
    PaperFigure("clip_pcc.adjacent", "CLIP-pcc (adjacent)", 0.972, None, "clip-pcc adjacent"),
    PaperFigure("dtc", "DTC", 0.954, None, "dtc"),
    PaperFigure("ssim.rgb", "SSIM", 0.375, None, "ssim", pixel=True),
    PaperFigure("psnr.rgb", "PSNR (dB)", 9.476, None, "psnr", pixel=True),
)


# ------------------------------------------------------------------ results handling


def flatten_results(results: dict, prefix: str = "") -> dict[str, dict]:
    """{dotted.key: metric dict} for every leaf (a dict with "value", or a number)."""
    flat: dict[str, dict] = {}
    for k, v in (results or {}).items():
        if not prefix and k in NOT_METRICS:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict) and "value" in v:
            flat[key] = v
        elif isinstance(v, dict):
            flat.update(flatten_results(v, key + "."))
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            flat[key] = {"value": float(v)}
    return flat


def to_jsonable(obj):
    """Plain JSON types: numpy → python, tuples → lists, Paths → str, non-finite floats → None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None  # strict JSON has no inf/nan
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return str(obj)


def fmt(x, digits: int = 4) -> str:
    """A table cell: '—' for missing, 'inf'/'nan' spelled out, else `digits` decimals."""
    if x is None:
        return "—"
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def dataset_name(config: dict, results: dict) -> str:
    return str(results.get("dataset") or config.get("dataset") or config.get("source") or "unknown")


# ------------------------------------------------------------------ the paper table


def _why_not(fig: PaperFigure, ours: dict | None, dataset: str) -> str | None:
    """None when our number may be set beside the paper's, else the reason it may not."""
    if ours is None:
        return "not computed"
    if dataset.lower() in SIMULATED:
        return "ours is on the simulated world, never comparable to cc2017"
    if dataset.lower() != PAPER_DATASET:
        return f"dataset {dataset} is not {PAPER_DATASET}"
    if not str(ours.get("variant", "")).startswith(fig.variant):
        return f"metric variant differs (ours: {ours.get('variant', 'unstated')})"
    if fig.pool is not None and ours.get("pool_size") != fig.pool:
        return f"pool of {ours.get('pool_size')} items, the paper's is {fig.pool}"
    if fig.protocol is not None and ours.get("protocol") != fig.protocol:
        return f"subset protocol {ours.get('protocol')}, the paper's is {fig.protocol} (contiguous blocks of 300)"
    if fig.pixel and fig.resolution is None:
        return "the paper's SSIM/PSNR resolution is not recorded in DESIGN §7"
    if fig.pixel and tuple(ours.get("resolution") or ()) != tuple(fig.resolution):
        return f"resolution {ours.get('resolution')} differs from the paper's {list(fig.resolution)}"
    return None


def paper_table(results: dict, dataset: str, paper=PAPER_CC2017) -> list[dict]:
    """Rows: metric, paper, NeuroClips, ours, comparable (bool) and why not."""
    flat = flatten_results(results)
    rows = []
    for fig in paper:
        ours = flat.get(fig.key)
        why = _why_not(fig, ours, dataset)
        rows.append({"key": fig.key, "metric": fig.label, "paper": fig.paper, "neuroclips": fig.neuroclips,
                     "ours": None if ours is None else ours.get("value"), "comparable": why is None,
                     "why_not": why, "paper_variant": fig.variant})
    return rows


# ------------------------------------------------------------------ Markdown


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def metrics_markdown(flat: dict, baselines_flat: dict[str, dict], paper_rows: list[dict], *,
                     header: dict, notices: list[str]) -> str:
    """The people-facing report: a header, the metrics table, and the paper table."""
    lines = ["# CineNeuron evaluation", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += [f"- notice: {n}" for n in notices]
    names = list(baselines_flat)
    lines += ["", "## Metrics", "", _md_row(["metric", "variant", "ours", "± std", "± sem", "chance", "n", *names]),
              _md_row(["---"] * (7 + len(names)))]
    for key, r in flat.items():
        base = [fmt(baselines_flat[b].get(key, {}).get("value")) for b in names]
        lines.append(_md_row([key, r.get("variant", ""), fmt(r.get("value")), fmt(r.get("std")),
                              fmt(r.get("sem")), fmt(r.get("chance")), r.get("n", ""), *base]))
    lines += ["", f"## Against the paper ({PAPER_DATASET}, mean of 3 subjects)", "",
              _md_row(["metric", "paper", "NeuroClips", "ours", "comparable", "why not"]), _md_row(["---"] * 6)]
    for row in paper_rows:
        lines.append(_md_row([row["metric"], fmt(row["paper"], 3), fmt(row["neuroclips"], 3), fmt(row["ours"]),
                              "yes" if row["comparable"] else "no", row["why_not"] or ""]))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    return plt


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in key)


def plot_metric_bars(path: Path, key: str, ours: dict, baselines: dict[str, dict]) -> Path:
    """One bar per system (ours, then each baseline) with ±std whiskers and a dashed chance line."""
    plt = _pyplot()
    systems = [("ours", ours)] + [(n, b) for n, b in baselines.items() if b is not None]
    vals = [float(s.get("value", np.nan)) for _, s in systems]
    errs = [float(s.get("std") or 0.0) for _, s in systems]
    vals = [v if math.isfinite(v) else np.nan for v in vals]  # inf (PSNR of identical frames) is not drawable
    fig, ax = plt.subplots(figsize=(3.2 + 0.6 * len(systems), 3.2))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    ax.bar([n for n, _ in systems], vals, yerr=errs, capsize=4, color=colors[: len(systems)])
    if ours.get("chance") is not None:
        ax.axhline(float(ours["chance"]), ls="--", color="grey", lw=1, label="chance")
        ax.legend(loc="best", fontsize=8)
    ax.set_title(key, fontsize=10)
    ax.set_ylabel(ours.get("unit", "value"))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def plot_rank_histogram(path: Path, key: str, ranks, pool: int | None) -> Path:
    """Histogram of the correct item's rank (0 = retrieved first) over all test items."""
    plt = _pyplot()
    ranks = np.asarray(ranks, dtype=int)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.hist(ranks, bins=min(50, max(ranks.max() + 1, 1)), color="#1f77b4")
    ax.set_xlabel("rank of the correct item (0 = top-1)")
    ax.set_ylabel("queries")
    ax.set_title(f"{key}: ranks among {len(ranks)} items" + (f" (top-1 pool {pool})" if pool else ""), fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ grid video


def _tile(frames, t: int, size: tuple[int, int]) -> np.ndarray:
    """Frames as uint8 tiles (t, h, w, 3) at one size and frame count."""
    from cineneuron.eval.frames import resize_frames
    from cineneuron.frames import resample, to_uint8

    u8 = to_uint8(frames)
    u8 = np.repeat(u8, 3, axis=-1) if u8.shape[-1] == 1 else u8
    return resize_frames(resample(u8, t), size)


def _caption_strip(texts: list[str], widths: int, height: int, n_cols: int) -> np.ndarray:
    """A black strip (height, n_cols·width, 3) with one short text per column."""
    import cv2

    strip = np.zeros((height, widths * n_cols, 3), np.uint8)
    for c, text in enumerate(texts[:n_cols]):
        cv2.putText(strip, str(text)[: max(4, widths // 6)], (c * widths + 3, height - 5),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def write_grid_video(path: Path, videos, *, tile: tuple[int, int] = (96, 96), fps: int = 8,
                     max_memories: int = 3) -> Path:
    """grid.mp4: one row per clip, columns ground truth | reconstruction | top memories.

    videos: list of (gt, recon, memories, captions). gt/recon: (T, H, W, 3) frames; memories:
    list of such arrays (or None); captions: a string (under the ground truth) or a list, one
    per column. Every tile is resized to `tile` and resampled to the longest ground truth's
    frame count. Written as H.264 yuv420p, which browsers play.
    """
    from cineneuron.frames import write_mp4

    t = max(len(v[0]) for v in videos)
    n_mem = min(max_memories, max(len(v[2] or []) for v in videos))
    cols, (h, w), cap = 2 + n_mem, tile, 14
    header = _caption_strip(["ground truth", "reconstruction"] + [f"memory {i + 1}" for i in range(n_mem)], w, cap, cols)
    rows = []
    for gt, recon, memories, captions in videos:
        tiles = [_tile(gt, t, tile), _tile(recon, t, tile)] + [_tile(m, t, tile) for m in (memories or [])[:n_mem]]
        tiles += [np.zeros((t, h, w, 3), np.uint8)] * (cols - len(tiles))
        texts = [captions] if isinstance(captions, str) else list(captions or [])
        strip = np.broadcast_to(_caption_strip(texts, w, cap, cols), (t, cap, w * cols, 3))
        rows.append(np.concatenate([np.concatenate(tiles, axis=2), strip], axis=1))  # (t, h+cap, W, 3)
    grid = np.concatenate([np.broadcast_to(header, (t, cap, w * cols, 3))] + rows, axis=1)  # (t, H, W, 3)
    return write_mp4(grid, path, fps)


# ------------------------------------------------------------------ the report


def write_report(out_dir, results: dict, *, config: dict, store_version, checkpoint,
                 baselines: dict[str, dict] | None = None, videos: list | None = None) -> dict[str, str]:
    """Write metrics.json, metrics.md, plots/*.png and (when videos are given) grid.mp4.

    baselines: {"ridge": results, "text-only": results, ...} in the same layout as `results`;
    each metric's bar plot shows ours beside them. A leaf with "ranks" (retrieval with
    return_ranks=True) also gets a rank histogram. Returns {"json": path, "markdown": path,
    "plots": [paths], "video": path or None}.
    """
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    baselines = baselines or {}
    flat = flatten_results(results)
    base_flat = {name: flatten_results(b) for name, b in baselines.items()}
    dataset = dataset_name(config or {}, results)
    rows = paper_table(results, dataset)
    notices = [str(n) for n in results.get("notices", [])]

    plots = []
    for key, r in flat.items():
        plots.append(plot_metric_bars(out / "plots" / f"{_safe(key)}.png", key, r,
                                      {n: b.get(key) for n, b in base_flat.items()}))
        if r.get("ranks"):
            plots.append(plot_rank_histogram(out / "plots" / f"{_safe(key)}_ranks.png", key, r["ranks"],
                                             r.get("pool_size")))
    video = write_grid_video(out / "grid.mp4", videos) if videos else None

    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    files = {"json": str(out / "metrics.json"), "markdown": str(out / "metrics.md"),
             "plots": [str(p) for p in plots], "video": str(video) if video else None}
    doc = {"dataset": dataset, "store_version": store_version, "checkpoint": checkpoint, "cineneuron": __version__,
           "created": created, "config": config, "results": results,
           "variants": {k: r.get("variant") for k, r in flat.items()}, "baselines": baselines,
           "paper_comparison": rows, "notices": notices, "files": files}
    header = {"dataset": dataset, "store version": store_version, "checkpoint": checkpoint,
              "cineneuron": __version__, "created": created}
    protocols = sorted({r["protocol"] for r in flat.values() if r.get("protocol")})
    if protocols:
        header["retrieval protocol"] = ", ".join(protocols) + " (" + "; ".join(_PROTOCOL_TEXT.get(p, p) for p in protocols) + ")"
        doc["retrieval_protocol"] = protocols[0] if len(protocols) == 1 else protocols
    atomic_write_text(out / "metrics.json", json.dumps(to_jsonable(doc), indent=2, allow_nan=False))
    atomic_write_text(out / "metrics.md", metrics_markdown(flat, base_flat, rows, header=header, notices=notices))
    return files
