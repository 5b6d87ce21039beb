"""`cn demo`, the README's first command, end to end (about 3 minutes on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # the whole demo: minutes


def test_demo_writes_its_report_and_learns_above_chance(tmp_path):
    work = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "cineneuron.cli", "demo", "--dir", str(work), "--quiet"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = work / "report"
    for f in ("metrics.json", "metrics.md", "grid.mp4", "demo_summary.json", "demo_summary.md", "plots/demo_summary.png"):
        assert (report / f).stat().st_size > 0, f
    s = json.loads((report / "demo_summary.json").read_text())
    chance = s["chance_retrieval"]
    assert s["stage1_retrieval"]["fmri_to_clip"] > 5 * chance and s["stage1_retrieval"]["clip_to_fmri"] > 5 * chance
    assert s["voxel_mask_vs_truth"]["precision"] > 0.9
    assert s["timings_s"]["total"] < 600
    assert "| stage-1 retrieval top-1" in r.stdout and "text-only" in r.stdout
    # Memory expansion: before the second world is ingested no memory can show a held-out kind
    # (they are kept out of training, and test clips are never memories); after it, some can.
    me = s["memory_expansion"]
    k = me["k"]
    assert me["before"]["mom"]["n"] > 0
    assert all(me["before"][m][f"top{k}_heldout"] == 0.0 for m in ("mom", "txt", "img", "act"))
    assert 0.0 < me["after"]["chance"] < 1.0
    assert max(me["after"][m][f"top{k}_heldout"] for m in ("mom", "txt", "img", "act")) > 0.0
    assert min(s["router"]["std"].values()) > 0.0  # the router's weights vary per query
    assert me["after"]["ceiling"]["txt"] > 0.5  # captions name the held-out kind: a perfect text query finds it
    # The first command leads somewhere: an example query file and the next commands, which run.
    query = work / "query_subject1.npy"
    assert query.is_file() and f"cn query --fmri {query} --subject 1 --store {work / 'store'}" in r.stdout
    q = subprocess.run([sys.executable, "-m", "cineneuron.cli", "query", "--fmri", str(query), "--subject", "1",
                        "--store", str(work / "store"), "--out", str(tmp_path / "x.mp4"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr[-2000:]
    out = json.loads(q.stdout)
    assert len(out["queries"]) == 3 and all(len(x["memories"]) == k and x["video"] for x in out["queries"])
    # The demo links to its HTML report, which holds the summary, the eval tables, plots and grid video.
    assert "HTML report: file://" in r.stdout
    page = (report / "index.html").read_text()
    assert "Demo summary" in page and "grid.mp4" in page and "demo_summary.png" in page
