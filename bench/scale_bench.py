"""Beyond one machine, measured side by side in one run on this machine.

    python bench/scale_bench.py

Prints local ingest clips/s and single-process vs 2-rank (torchrun, gloo) stage-1 steps/s on the
same toy store, with the core count. Ray ingest is not part of this branch (see NOTES.md), so
its column says so instead of showing a number.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOY = [sys.executable, str(ROOT / "tests" / "helpers" / "cn_toy.py")]
CN = [sys.executable, "-m", "cineneuron.cli"]
TRAIN = {"train.epochs": 3, "train.batch_size": 16, "brain.hidden": 64, "brain.dropout": 0.0,
         "train.device": "cpu", "train.router_holdout": 0.0}


def run(cmd, **kw) -> str:
    r = subprocess.run([*map(str, cmd)], capture_output=True, text=True, timeout=900, cwd=ROOT, **kw)
    if r.returncode:
        sys.exit(f"{' '.join(map(str, cmd[:4]))} failed: {r.stderr[-1500:]}")
    return r.stdout


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import toy_preset_dict

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "toy.json").write_text(json.dumps(toy_preset_dict()))
        run([*TOY, "synth", "--out", d / "w", "--size", "small", "--clips", "160", "--seed", "1", "--quiet"], env=env)
        run([*TOY, "init", "--store", d / "s", "--preset", d / "toy.json"], env=env)
        out = run([*TOY, "ingest", "synth", "--root", d / "w", "--subject", "1", "--store", d / "s", "--quiet",
                   "--set", "fmri.cc2017.selection.method=all"], env=env)
        ingest_rate = float(re.search(r"\(([\d.]+) clips/s\)", out).group(1))
        sets = [a for k, v in TRAIN.items() for a in ("--set", f"{k}={v}")]
        base = [*CN, "train", "--stage", "1", "--subject", "1", "--store", d / "s", "--json", "--quiet", *sets]
        one = json.loads(run(base, env=env))
        two = json.loads(run([*base, "--nproc", "2"], env=env))
    bs = TRAIN["train.batch_size"]
    single, ranks = one["samples_per_s"] / bs, two["samples_per_s"] / bs
    print(f"cores: {os.cpu_count()}")
    print("| what | one machine, one process | scaled out |")
    print("| --- | --- | --- |")
    print(f"| ingest (toy encoders, 160 clips), clips/s | {ingest_rate:.1f} | Ray: not built in this branch |")
    print(f"| stage 1 (global batch {bs}), steps/s | {single:.1f} | 2 ranks (torchrun, gloo): {ranks:.1f} "
          f"({ranks / single:.2f}x) |")
    print(f"{os.cpu_count()} cores cannot show a speed-up: two ranks share them and add an all-reduce per "
          "step. What this run shows is that the path works; speed needs real cores or GPUs.")


if __name__ == "__main__":
    main()
