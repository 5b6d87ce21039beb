"""`cn experiment`'s report: experiments.json, experiments.md and index.html (tables, maps, videos)."""

from __future__ import annotations

import json
from pathlib import Path

from cineneuron.experiments.tables import LABELS, METRICS


def _f(x, d: int = 3) -> str:
    return "—" if x is None else f"{x:.{d}f}"


def _cell(m: dict) -> str:
    return _f(m["mean"]) + ("" if m["std"] is None else f" ± {m['std']:.3f}")


def _ci(c: dict | None) -> str:
    return "ref" if c is None else f"{c['value']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def table_rows(t: dict) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """(values header, values rows incl. chance, paired-difference header, rows)."""
    names = list(t["rows"][0]["metrics"])
    head = ["row", "n", "pool"] + [LABELS.get(m, m.replace("_", " ")) for m in names]
    rows = [[r["label"], "/".join(map(str, dict.fromkeys(r["n"]))), "/".join(map(str, dict.fromkeys(r["pool_size"])))]
            + [_cell(r["metrics"][m]) for m in names] for r in t["rows"]]
    rows.append(["chance", "", ""] + [_f(t["rows"][0]["metrics"][m]["chance"]) for m in names])
    dhead = ["row − " + t["ref"] + " (same samples, 95 % CI)"] + [LABELS[m] for m in METRICS]
    drows = [[r["label"]] + [_ci(r["metrics"][m]["diff_vs_full"]) for m in METRICS] for r in t["rows"]]
    return head, rows, dhead, drows


def _md(head, rows) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def claims_rows(s: dict) -> list[list[str]]:
    return [[c["table"], c["claim"], f"{c['better']} vs {c['worse']}", LABELS[c["metric"]], _ci(c["diff"]), c["verdict"]]
            for c in s["claims"]]


def interp_rows(s: dict) -> tuple[list[list[str]], list[list[str]]]:
    per = s["interpretation"]["per_variant"]

    def ci(d):
        return f"{d['mean']:.3f}" + ("" if d["low"] != d["low"] else f" [{d['low']:.3f}, {d['high']:.3f}]")

    rows = [[v, ci(d["motion_share"]), _f(d["motion_voxel_fraction"]["mean"]), ci(d["object_share"]),
             _f(d["object_voxel_fraction"]["mean"])] for v, d in per.items()]
    checks = [[c["what"], f"{c['from']} → {c['to']}", c["share"], f"{c['diff']:+.4f}"
               + ("" if c["low"] != c["low"] else f" [{c['low']:+.4f}, {c['high']:+.4f}]"), c["outcome"]]
              for c in s["interpretation"]["checks"]]
    return rows, checks


CLAIM_HEAD = ["table", "claim", "rows", "metric", "difference [95 % CI]", "verdict"]
INTERP_HEAD = ["variant", "motion share [95 % CI]", "motion voxels", "object share [95 % CI]", "object voxels"]
CHECK_HEAD = ["change", "variants", "share", "difference [95 % CI]", "outcome"]


def markdown(s: dict) -> str:
    lines = [f"# cn experiment: the paper's tables on the simulated brain (seeds {', '.join(map(str, s['seeds']))}"
             + (", --quick" if s["quick"] else "") + ")", "",
             f"Wall time {s['timings_s']['total']:.0f} s. Cells: mean ± std over seeds. Retrieval is among the row's "
             "test samples; superclass / action / kind: the top-1 memory matches the seen clip; n-way from a linear "
             "probe on the encoders' features predicting the kind (17 kinds, so the widest peer test is 15-way).", ""]
    for name, t in s["tables"].items():
        head, rows, dhead, drows = table_rows(t)
        lines += [f"## {name} ({t['paper']}): {t['title']}", ""] + ([t["note"], ""] if t["note"] else [])
        if "same_checkpoint" in t:
            lines += [f"Same checkpoint in every row (per seed): {'yes' if t['same_checkpoint'] else 'NO'} "
                      f"({', '.join(dict.fromkeys(c for r in t['rows'] for c in r['checkpoints']))}).", ""]
        lines += _md(head, rows) + [""] + _md(dhead, drows) + [""]
    lines += ["## The paper's claims on the simulated brain", ""] + _md(CLAIM_HEAD, claims_rows(s)) + [""]
    rows, checks = interp_rows(s)
    lines += ["## Interpretation: importance on the planted voxel types", ""] + _md(INTERP_HEAD, rows) + [""]
    lines += _md(CHECK_HEAD, checks) + [""]
    return "\n".join(lines)


def plot_table(path: Path, name: str, t: dict, metrics=("same_superclass", "same_action", "same_kind", "ssim")) -> Path:
    """Grouped bars: one group per metric, one bar per row, whiskers = std over seeds, chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    n = len(t["rows"])
    width = 0.8 / n
    for j, r in enumerate(t["rows"]):
        vals = [r["metrics"][m]["mean"] or 0.0 for m in metrics]
        errs = [r["metrics"][m]["std"] or 0.0 for m in metrics]
        ax.bar(np.arange(len(metrics)) + (j - (n - 1) / 2) * width, vals, width, yerr=errs, capsize=2, label=r["label"])
    for i, m in enumerate(metrics):
        c = t["rows"][0]["metrics"][m]["chance"]
        if c is not None:
            ax.hlines(c, i - 0.4, i + 0.4, colors="k", linestyles="--", lw=0.8)
    ax.set_xticks(range(len(metrics)), [LABELS[m] for m in metrics])
    ax.set_ylim(0, 1)
    ax.set_title(f"{name} ({t['paper']}); dashed: chance", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_outputs(out: Path, s: dict, videos: list[dict]) -> dict:
    from cineneuron.eval.html import Section, write_html
    from cineneuron.eval.report import to_jsonable

    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "experiments.json"), "markdown": str(out / "experiments.md"), "html": str(out / "index.html")}
    (out / "experiments.md").write_text(markdown(s))
    sections = []
    for name, t in s["tables"].items():
        head, rows, dhead, drows = table_rows(t)
        paras = [t["note"]] if t["note"] else []
        if "same_checkpoint" in t:
            paras.append(f"same checkpoint in every row: {'yes' if t['same_checkpoint'] else 'NO'}")
        plot = plot_table(out / "plots" / f"table_{name}.png", name, t)
        sections.append(Section(f"{name} ({t['paper']}): {t['title']}", paras, [(head, rows), (dhead, drows)],
                                images=[(str(plot), f"{name}: mean ± std over seeds")]))
    sections.append(Section("The paper's claims on the simulated brain", [], [(CLAIM_HEAD, claims_rows(s))]))
    rows, checks = interp_rows(s)
    sections.append(Section("Interpretation maps", ["importance = gradient x input over the test set (stage-1 model), drawn at each voxel's receptive-field centre"],
                            [(INTERP_HEAD, rows), (CHECK_HEAD, checks)],
                            images=[(p, f"seed {p.rsplit('seed', 1)[-1][:-4]}") for p in s["interpretation"]["plots"]]))
    sections.append(Section("Side-by-side videos (full model, seed " + str(s["seeds"][0]) + ")", [],
                            videos=[(v["path"], v["caption"]) for v in videos]))
    write_html(out, "cn experiment", sections, intro=[f"seeds {s['seeds']}, wall time {s['timings_s']['total']:.0f} s"])
    (out / "experiments.json").write_text(json.dumps(to_jsonable({**s, "files": files}), indent=1, allow_nan=False))
    return files
