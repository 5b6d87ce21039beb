"""Beyond one machine, measured side by side in one run on this machine.

    python bench/scale_bench.py

Prints local vs Ray ingest clips/s (the same 160 synth clips into two stores; Ray started for
the job with `--ray local`, inside its own loopback-only network namespace, since Ray binds every
interface) and single-process vs 2-rank (torchrun, gloo) stage-1 steps/s on the same toy store,
with the core count. The Ray figure includes starting Ray (a few seconds), as a user's job would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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


def ray_ingest(d: Path, env: dict) -> str:
    """Ray ingest of the same world into a fresh store, in a loopback-only network namespace."""
    import importlib.util

    if not (importlib.util.find_spec("ray") and importlib.util.find_spec("lance_ray")):
        return "skipped (pip install 'cineneuron[ray]')"
    if not shutil.which("unshare"):
        return "skipped (needs unshare -n for a loopback-only Ray)"
    run([*TOY, "init", "--store", d / "r", "--preset", d / "toy.json"], env=env)
    rt = Path(tempfile.mkdtemp(prefix="cnray-"))  # short: Ray's socket paths stop at 107 bytes
    try:
        cmd = " ".join(map(str, [*TOY, "ingest", "synth", "--root", d / "w", "--store", d / "r", "--ray", "local", "--quiet"]))
        out = run(["unshare", "-n", "sh", "-c", f"ip link set lo up; exec {cmd}"],
                  env={**env, "RAY_TMPDIR": str(rt), "HOME": str(rt), "RAY_USAGE_STATS_ENABLED": "0"})
    finally:
        shutil.rmtree(rt, ignore_errors=True)
    return re.search(r"\(([\d.]+) clips/s\)", out).group(1)


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
        ray_rate = ray_ingest(d, env)
        sets = [a for k, v in TRAIN.items() for a in ("--set", f"{k}={v}")]
        base = [*CN, "train", "--stage", "1", "--subject", "1", "--store", d / "s", "--json", "--quiet", *sets]
        one = json.loads(run(base, env=env))
        two = json.loads(run([*base, "--nproc", "2"], env=env))
    bs = TRAIN["train.batch_size"]
    single, ranks = one["samples_per_s"] / bs, two["samples_per_s"] / bs
    print(f"cores: {os.cpu_count()}")
    print("| what | one machine, one process | scaled out |")
    print("| --- | --- | --- |")
    print(f"| ingest (toy encoders, 160 clips), clips/s | {ingest_rate:.1f} | Ray (`--ray local`, "
          f"{os.cpu_count()} CPUs): {ray_rate} |")
    print(f"| stage 1 (global batch {bs}), steps/s | {single:.1f} | 2 ranks (torchrun, gloo): {ranks:.1f} "
          f"({ranks / single:.2f}x) |")
    print(f"{os.cpu_count()} cores cannot show a speed-up: two ranks share them and add an all-reduce per "
          "step; Ray's figure includes starting Ray and its workers, and its tasks share the same cores. "
          "What this run shows is that the paths work; speed needs real cores, nodes or GPUs.")


if __name__ == "__main__":
    main()
