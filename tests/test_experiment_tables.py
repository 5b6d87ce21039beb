"""Fast checks of `cn experiment`'s aggregation, verdicts and argument errors (no training)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from cineneuron.experiments.rows import TABLES
from cineneuron.experiments.tables import METRICS, aggregate_table, verdict


def _row(label, per, ckpt="a", samples=("s0", "s1", "s2", "s3")):
    return {"label": label, "variant": "full", "checkpoint": ckpt, "n": len(samples), "pool": "base", "pool_size": 10,
            "per_sample": {m: np.asarray(per, float) for m in METRICS}, "chance": {m: 0.1 for m in METRICS},
            "nway": {"2way_peer": {"value": 0.8, "chance": 0.75}}, "samples": list(samples)}


def test_cells_are_mean_std_over_seeds_and_paired_ci_against_the_full_row():
    t = TABLES["noise"]  # ref = row 0 (clean)
    seeds = [[_row("clean", [1, 1, 1, 1]), _row("10", [1, 1, 0, 0]), _row("25", [0, 0, 0, 0])],
             [_row("clean", [1, 1, 1, 0]), _row("10", [1, 1, 1, 0]), _row("25", [0, 0, 0, 0])]]
    agg = aggregate_table("noise", seeds)
    cell = agg["rows"][1]["metrics"]["same_superclass"]
    assert cell["seeds"] == [0.5, 0.75] and np.isclose(cell["mean"], 0.625) and np.isclose(cell["std"], np.std([0.5, 0.75], ddof=1))
    ci = cell["diff_vs_full"]  # pooled pairs over both seeds: 8 samples, mean diff (-2 + 0) / 8
    assert ci["n"] == 8 and np.isclose(ci["value"], -0.25) and ci["low"] <= -0.25 <= ci["high"]
    assert agg["rows"][0]["metrics"]["same_superclass"]["diff_vs_full"] is None
    assert agg["rows"][2]["metrics"]["same_superclass"]["diff_vs_full"]["high"] < 0
    assert agg["rows"][0]["metrics"]["2way_peer"]["chance"] == 0.75 and len(agg["rows"]) == len(t.rows)


def test_pool_table_detects_a_changed_checkpoint_and_unpaired_samples():
    rows = [_row(r.label, [1, 0, 1, 0]) for r in TABLES["pool"].rows]
    assert aggregate_table("pool", [rows])["same_checkpoint"]
    rows[2] = _row("x", [1, 0, 1, 0], ckpt="b")
    assert not aggregate_table("pool", [rows])["same_checkpoint"]
    rows[2] = _row("x", [1, 0, 1, 0], samples=("a", "b", "c", "d"))
    import pytest

    with pytest.raises(ValueError, match="different samples"):
        aggregate_table("pool", [rows])


def test_verdicts():
    assert verdict({"n": 5, "low": 0.01, "high": 0.2}, "gain") == "reproduced"
    assert verdict({"n": 5, "low": -0.1, "high": 0.2}, "gain") == "within noise"
    assert verdict({"n": 5, "low": -0.3, "high": -0.1}, "gain") == "not reproduced (reversed)"
    assert verdict({"n": 5, "low": -0.1, "high": 0.1}, "robust").startswith("reproduced")
    assert verdict({"n": 5, "low": -0.3, "high": -0.1}, "robust").startswith("not reproduced")


def test_bad_arguments_are_one_line_exit_2(tmp_path):
    for args in (["--seeds", "0,x"], ["--seeds", "1,1"], ["--only", "components,nope"]):
        r = subprocess.run([sys.executable, "-m", "cineneuron.cli", "experiment", "--dir", str(tmp_path / "e"), *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
