"""Ray ingest on a 2-node local Ray cluster in its own loopback-only network namespace."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import VIDEOS, toy_preset_dict

HELPERS = Path(__file__).parent / "helpers"
TOY = [sys.executable, str(HELPERS / "cn_toy.py")]


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


needs_ray = pytest.mark.skipif(
    not (importlib.util.find_spec("ray") and importlib.util.find_spec("lance_ray") and _can_unshare()),
    reason="needs ray + lance-ray (pip install 'cineneuron[ray]') and a network namespace (unshare -n)")


def _inputs(d: Path, env: dict) -> tuple[Path, Path]:
    """The two real videos, one that decodes half-way and one that cannot be opened; a synth world."""
    import imageio_ffmpeg

    real = d / "real"
    real.mkdir()
    for v in ("bigbuckbunny.mp4", "bikes.mp4"):
        shutil.copy(VIDEOS / v, real / v)
    fast = d / "fast.mp4"  # index at the front: the cut copy probes fine and fails while decoding
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(VIDEOS / "bikes.mp4"),
                    "-c", "copy", "-movflags", "faststart", str(fast)], check=True, timeout=60)
    (real / "cut.mp4").write_bytes(fast.read_bytes()[:150_000])
    (real / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    world = d / "world"
    subprocess.run([*TOY, "synth", "--out", str(world), "--size", "small", "--clips", "40", "--subjects", "0",
                    "--quiet"], check=True, capture_output=True, timeout=120, env=env)
    return real, world


def _leftover_ray(marker: str) -> list[int]:
    """Processes whose command line names this test's Ray folder (there must be none)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def _rows(store: str) -> dict:
    from cineneuron.store import Store

    t = Store.open(store).clips.to_arrow().to_pylist()
    return {r["clip_id"]: r for r in t}


def _jobs(store: str) -> list[tuple]:
    from cineneuron.store import Store

    return [(j.source, j.status, j.n_ok, j.n_failed, j.n_skipped, sorted(json.loads(j.errors_json), key=str))
            for j in sorted(Store.open(store).catalog.jobs(), key=lambda j: j.id)]


@needs_ray
@pytest.mark.slow  # a 2-node Ray cluster on 2 shared cores: ~60 s
def test_ray_cluster_ingest_equals_local_and_a_rerun_adds_nothing(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0", "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    real, world = _inputs(tmp_path, env)
    (tmp_path / "toy.json").write_text(json.dumps(toy_preset_dict()))
    local, remote = str(tmp_path / "local"), str(tmp_path / "ray_store")
    for store in (local, remote):
        subprocess.run([*TOY, "init", "--store", store, "--preset", str(tmp_path / "toy.json")], check=True,
                       capture_output=True, timeout=120, env=env)
    sources = [("folder", real), ("synth", world)]
    for name, root in sources:  # the local ingest of the same input
        r = subprocess.run([*TOY, "ingest", name, "--root", str(root), "--store", local, "--quiet"],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode in (0, 3), r.stderr[-2000:]

    from cineneuron.store import Store

    v0 = Store.open(remote).version
    jobs = [f"{name}|{root}|{remote}" for name, root in sources] * 2  # each job, then its rerun
    # Ray's sockets live in its temp folder and AF_UNIX paths stop at 107 bytes: pytest's tmp_path
    # is too deep, so a short folder of this test's own, removed at the end.
    out, ray_tmp = tmp_path / "ray.json", Path(tempfile.mkdtemp(prefix="cnray-"))
    cmd = f"ip link set lo up; exec {sys.executable} {HELPERS / 'ray_ingest_job.py'} {ray_tmp} {out} " + \
        " ".join(f"'{j}'" for j in jobs)
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", cmd], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
    left = _leftover_ray(str(ray_tmp))
    for pid in left:  # never leave Ray running, even when the assertion below fails
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, log[-3000:]
    assert not left, f"Ray processes left running: {left}"
    res = json.loads(out.read_text())
    assert res["nodes"] == 2
    first, rerun = res["jobs"][:2], res["jobs"][2:]
    assert [j["exit"] for j in res["jobs"]] == [3, 0, 3, 0]  # the folder has failing files (exit 3), as locally
    print(f"ray: cluster up {res['start_s']} s, jobs {[j['seconds'] for j in res['jobs']]} s")

    a, b = _rows(local), _rows(remote)
    # 7 windows of the two real videos, 1 that still decodes from the truncated copy (issue 15), 40 synth clips
    assert sorted(a) == sorted(b) and len(a) == 48
    for cid, ra in a.items():
        rb = b[cid]
        for col in ("img_frames", "img", "txt", "act", "mix"):
            assert np.abs(np.asarray(ra[col], np.float64) - np.asarray(rb[col], np.float64)).max() <= 1e-6, (cid, col)
        for col in ("labels", "caption", "source", "video", "split", "start_s", "end_s", "frames", "cond"):
            assert ra[col] == rb[col], (cid, col)
    ja, jb = _jobs(local), _jobs(remote)
    assert jb[:2] == ja  # status, counts and every failure with its reason
    assert any("truncated" in e["reason"] or "cut.mp4@" in e["item"] for e in ja[0][5])  # a decode failure
    assert any(e["item"] == "broken.mp4" for e in ja[0][5])  # and a file that cannot be opened
    # One clips version per job; a rerun adds no row and at most one version.
    assert first[0]["version"] - v0 == 1 and first[1]["version"] - first[0]["version"] == 1
    assert [j["rows"] for j in res["jobs"]] == [8, 48, 48, 48]
    assert rerun[-1]["version"] - first[-1]["version"] <= 1
    assert [(j[2], j[4]) for j in jb[2:]] == [(0, 8), (0, 40)]  # nothing re-encoded: all skipped


def test_staging_tables_sit_beside_the_stores_tables():
    from types import SimpleNamespace

    from cineneuron.store.staging import staging_name, table_uri

    assert staging_name(12) == "staging_job12"
    assert table_uri(SimpleNamespace(uri="/data/store/"), "staging_job1") == "/data/store/staging_job1.lance"
    ddb = SimpleNamespace(uri="s3+ddb://bucket/cn?ddbTableName=commits")
    assert table_uri(ddb, "staging_job1") == "s3+ddb://bucket/cn/staging_job1.lance?ddbTableName=commits"
