"""The CLI's contract: light start-up, init/stats, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

CN = [sys.executable, "-m", "cineneuron.cli"]


def run(*args):
    return subprocess.run([*CN, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_importing_the_cli_loads_no_heavy_library():
    code = ("import sys, cineneuron.cli; "
            "print(','.join(m for m in ('torch', 'diffusers', 'transformers', 'lancedb', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_init_then_stats_json_and_other_preset_refused(tmp_path):
    s = tmp_path / "s"
    r = run("init", "--store", s, "--preset", "classic")
    assert r.returncode == 0, r.stderr
    st = json.loads(run("pool", "stats", "--store", s, "--json").stdout)
    assert st["preset"] == "classic" and st["clips"] == 0
    assert st["dims"] == {"image": 256, "text": 384, "action": 256, "cond": 384} and st["mix_dim"] == 896
    r = run("init", "--store", s, "--preset", "paper")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "'classic'" in r.stderr and "'paper'" in r.stderr


def test_store_falls_back_to_env_then_default(tmp_path):
    env = {**__import__("os").environ, "CN_STORE": str(tmp_path / "env-store")}
    r = subprocess.run([*CN, "init"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "env-store").exists()
    env.pop("CN_STORE")
    r = subprocess.run([*CN, "pool", "stats"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 2 and "cn-store" in r.stderr and "cn init" in r.stderr


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("train:\n  lr: -1\n")
    r = run("config", "--config", bad)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "train.lr" in r.stderr
    r = run("config", "--set", "train.nope=1")
    assert r.returncode == 2 and "unknown field" in r.stderr
    ok = tmp_path / "c.toml"
    ok.write_text("[train]\nlr = 0.002\n")
    assert json.loads(run("config", "--config", ok, "--set", "decode.top_k=7").stdout)["decode"]["top_k"] == 7
