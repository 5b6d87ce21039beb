"""`cn experiment --quick --json`: every paper table, every row with values, CIs and chance."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from browser import chromium, loaded_media, screenshot

TABLES = {"components": 4, "semantics": 3, "memory": 4, "pool": 4, "ood": 2, "noise": 3}
PAIRED = ("fmri_to_clip", "clip_to_fmri", "same_superclass", "same_action", "same_kind", "label_vote",
          "ssim", "psnr", "epe", "dd_gap")


@pytest.mark.slow
def test_experiment_quick_json_has_every_table_row_ci_and_chance(tmp_path):
    work = tmp_path / "exp"
    r = subprocess.run([sys.executable, "-m", "cineneuron.cli", "experiment", "--quick", "--dir", str(work),
                        "--json"], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["timings_s"]["total"] < 600  # under 5 min on 2 idle cores; this bound allows a shared machine
    assert set(s["tables"]) == set(TABLES)
    for name, n_rows in TABLES.items():
        t = s["tables"][name]
        assert len(t["rows"]) == n_rows and t["paper"].startswith("Tab.")
        ref = [r["label"] for r in t["rows"]].index(t["ref"])
        for j, row in enumerate(t["rows"]):
            assert row["n"][0] > 0 and row["pool_size"][0] > 0
            for m in PAIRED + ("2way_peer", "2way_strict", "15way_peer", "15way_strict"):
                cell = row["metrics"][m]
                assert cell["mean"] is not None and cell["chance"] is not None, (name, row["label"], m)
            for m in PAIRED:
                ci = row["metrics"][m]["diff_vs_full"]
                if j == ref:
                    assert ci is None
                else:
                    assert ci["n"] > 0 and ci["low"] <= ci["value"] <= ci["high"], (name, row["label"], m)
    pool = s["tables"]["pool"]
    assert pool["same_checkpoint"] and len({r["checkpoints"][0] for r in pool["rows"]}) == 1
    assert [r["pool_size"][0] for r in pool["rows"]] == sorted(r["pool_size"][0] for r in pool["rows"])
    assert len({r["checkpoints"][0] for r in s["tables"]["components"]["rows"]}) == 3  # base, cls, full
    assert s["tables"]["ood"]["rows"][0]["n"][0] < s["tables"]["noise"]["rows"][0]["n"][0]
    assert {c["verdict"] for c in s["claims"]} <= {"reproduced", "within noise", "not reproduced (reversed)",
                                                    "reproduced (no significant loss)", "not reproduced (significant loss)"}
    per = s["interpretation"]["per_variant"]
    assert set(per) == {"base", "cls", "act", "full"}
    assert all(0 < per[v]["motion_share"]["mean"] < 1 and 0 < per[v]["object_share"]["mean"] < 1 for v in per)
    md = (work / "report" / "experiments.md").read_text()
    assert "## pool (Tab. S4)" in md and "Same checkpoint in every row (per seed): yes" in md
    page = work / "report" / "index.html"
    if chromium():
        media = loaded_media(page)
        assert len(media["imgs"]) >= 7 and len(media["vids"]) >= 1
        assert all(i["ok"] and i["w"] > 0 for i in media["imgs"]), media
        assert all(v["ok"] and v["w"] > 0 for v in media["vids"]), media
        assert screenshot(page, tmp_path / "experiment.png").stat().st_size > 10_000
