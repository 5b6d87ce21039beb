"""One self-contained index.html per report: tables, plots and side-by-side videos.

Readable offline from file:// with no server: images and videos are linked by relative paths
inside the report folder, and no script, font or style is fetched from anywhere. Videos must be
H.264 yuv420p mp4 (what browsers decode); `video_codec` checks a file's stream.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd}figure{display:inline-block;margin:.4em}
figcaption{font-size:12px;color:#555;max-width:600px}video{width:600px;max-width:100%;background:#000}.note{color:#555;font-size:13px}"""


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)  # (header, rows)
    images: list[tuple[str, str]] = field(default_factory=list)  # (path, caption)
    videos: list[tuple[str, str]] = field(default_factory=list)  # (path, caption)


def _rel(path: str | Path, root: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(out_dir: str | Path, title: str, sections: list[Section], *, intro: list[str] | None = None) -> Path:
    """Write out_dir/index.html; every linked file must lie inside out_dir (it is refused otherwise,
    so the folder can be copied or zipped and still open)."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(p)}</p>" for p in intro or []]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p class='note'>{html.escape(p)}</p>" for p in s.paragraphs]
        parts += [_table(h, r) for h, r in s.tables]
        for path, cap in s.images:
            parts.append(f"<figure><img src='{html.escape(_inside(path, root))}' alt='{html.escape(cap)}'>"
                         f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        for path, cap in s.videos:
            parts.append(f"<figure><video src='{html.escape(_inside(path, root))}' controls loop muted autoplay "
                         f"playsinline preload='auto'></video><figcaption>{html.escape(cap)}</figcaption></figure>")
    parts.append("</body></html>")
    path = root / "index.html"
    tmp = path.with_name("index.html.part")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _inside(path: str | Path, root: Path) -> str:
    rel = _rel(path, root)
    if rel.startswith("../") or not (root / rel).is_file():
        raise ValueError(f"{path} is not a file inside the report folder {root}")
    return rel


def video_codec(path: str | Path) -> tuple[str, str]:
    """(codec, pixel format) of an mp4's first video stream, read with imageio-ffmpeg's ffmpeg."""
    import re
    import subprocess

    import imageio_ffmpeg

    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Video: (\w+)[^,]*, (\w+)", r.stderr)
    return (m.group(1), m.group(2)) if m else ("", "")


def eval_index(out_dir: str | Path, *, title: str = "CineNeuron evaluation", before: list[Section] | None = None) -> Path:
    """index.html of a `cn eval` report folder (metrics.json, plots/, grid.mp4), with optional
    sections first (the demo puts its summary there)."""
    import json

    from cineneuron.eval.report import flatten_results, fmt

    root = Path(out_dir)
    doc = json.loads((root / "metrics.json").read_text())
    flat = flatten_results(doc["results"])
    base = {n: flatten_results(b) for n, b in (doc.get("baselines") or {}).items()}
    head = ["metric", "variant", "ours", "± std", "chance", "n", *base]
    rows = [[k, str(r.get("variant", "")), fmt(r.get("value")), fmt(r.get("std")), fmt(r.get("chance")), str(r.get("n", "")),
             *[fmt(base[b].get(k, {}).get("value")) for b in base]] for k, r in flat.items()]
    paper = [[r["metric"], fmt(r["paper"], 3), fmt(r["ours"]), "yes" if r["comparable"] else "no", r["why_not"] or ""]
             for r in doc.get("paper_comparison", [])]
    files = doc.get("files", {})
    sections = list(before or []) + [
        Section("Metrics", [f"dataset {doc['dataset']}, store version {doc['store_version']}, checkpoint {doc['checkpoint']}"]
                + [f"notice: {n}" for n in doc.get("notices", [])], [(head, rows)]),
        Section("Against the paper", [], [(["metric", "paper", "ours", "comparable", "why not"], paper)]),
    ]
    if files.get("video"):
        sections.append(Section("Side by side: ground truth | reconstruction | top memories", [],
                                videos=[(files["video"], "grid.mp4")]))
    sections.append(Section("Plots", [], images=[(p, Path(p).stem) for p in files.get("plots", [])]))
    return write_html(root, title, sections)
