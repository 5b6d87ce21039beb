"""`cn ingest` / `cn init`: refusals before any write, partial files, short videos, interrupted jobs,
conflict retries and two concurrent ingests of one source."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import VIDEOS

pytestmark = pytest.mark.skipif(not (VIDEOS / "bikes.mp4").exists(), reason="sample videos not present")
CN = [sys.executable, "-m", "cineneuron.cli"]


def cn(*args, **kw):
    return subprocess.run([*CN, *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


def _state(path):
    from cineneuron.store import Store

    s = Store.open(str(path))
    return s.count(), s.version


def _refused(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


@pytest.fixture
def empty_store(tmp_path):
    s = tmp_path / "store"
    assert cn("init", "--store", s).returncode == 0
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(VIDEOS / "bikes.mp4", vids / "bikes.mp4")
    return s, vids


@pytest.mark.parametrize("args,needles", [
    (("--limit", "-1"), ("--limit",)),
    (("--subject", "1"), ("no fMRI", "--subject")),
    (("--set", "encoders.preset=paper"), ("'classic'", "'paper'")),
])
def test_bad_ingest_arguments_write_nothing(empty_store, args, needles):
    s, vids = empty_store
    before = _state(s)
    _refused(cn("ingest", "folder", "--root", vids, "--store", s, "--quiet", *args), *needles)
    assert _state(s) == before == (0, before[1])


def test_malformed_preset_names_the_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "encoders": {"image": {"name": "gabor", "dim": "wide"}}}))
    _refused(cn("init", "--store", tmp_path / "s", "--preset", bad), "encoders.image.dim")
    bad.write_text("{not json")
    _refused(cn("init", "--store", tmp_path / "s", "--preset", bad), "bad.json")
    assert not (tmp_path / "s" / "meta.lance").exists()


def _faststart_truncated(dst):
    import imageio_ffmpeg

    fs = dst.with_name("full.mp4")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(VIDEOS / "bikes.mp4"),
                    "-c", "copy", "-movflags", "+faststart", str(fs)], check=True, timeout=60)
    data = fs.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index is at the front
    dst.write_bytes(data[: int(len(data) * 0.55)])
    fs.unlink()


def _short_video(path, seconds=1.0, fps=8):
    import imageio.v3 as iio
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 255, size=(int(seconds * fps), 64, 64, 3), dtype=np.uint8)
    iio.imwrite(path, frames, fps=fps, codec="libx264")


@pytest.mark.slow  # classic encoders on 2 clips: ~40 s on the shared machine
def test_truncated_file_keeps_its_decodable_windows_and_short_video_is_counted(tmp_path):
    root = tmp_path / "vids"
    root.mkdir()
    _faststart_truncated(root / "cut.mp4")
    _short_video(root / "short.mp4")
    store = tmp_path / "store"
    cn("init", "--store", store)
    r = cn("ingest", "folder", "--root", root, "--store", store, "--quiet")
    assert r.returncode == 3, r.stderr
    assert r.stderr == ""  # no libav/decord log lines beside our output
    assert "2 clips stored" in r.stdout and "3 failed" in r.stdout
    assert "1 video(s) shorter than one clip window" in r.stdout and "short.mp4" in r.stdout
    assert _state(store)[0] == 2
    job = json.loads(cn("pool", "jobs", "--store", store, "--job", "1", "--json").stdout)[0]
    assert job["status"] == "partial" and len(job["errors"]) == 3
    assert all("cut.mp4" in e["item"] and "not decodable" in e["reason"] for e in job["errors"])
    assert job["notes"]["too_short"][0][0] == "short.mp4"


def test_killed_ingest_job_shows_interrupted_and_is_resumed(tmp_path):
    """A job whose process died (here: it exits without finishing) reads "interrupted"; the next
    ingest of that source says it resumes it and marks it so."""
    root = tmp_path / "vids"
    root.mkdir()
    _short_video(root / "short.mp4")  # no clips: the ingest itself needs no encoder
    store = tmp_path / "store"
    cn("init", "--store", store)
    code = ("import os, sys; from cineneuron.store import Store; "
            f"s = Store.open({str(store)!r}); s.catalog.start_job('folder', {str(root)!r}, 'clips', 3); os._exit(9)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 9
    jobs = json.loads(cn("pool", "jobs", "--store", store, "--json").stdout)
    assert jobs[0]["status"] == "interrupted" and jobs[0]["pid"] and jobs[0]["host"]
    assert "interrupted" in cn("pool", "jobs", "--store", store).stdout
    r = cn("ingest", "folder", "--root", root, "--store", store, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "resumed interrupted job 1" in r.stdout
    jobs = {j["id"]: j for j in json.loads(cn("pool", "jobs", "--store", store, "--json").stdout)}
    assert jobs[1]["status"] == "interrupted" and jobs[1]["resumed_by"] == 2 and jobs[2]["status"] == "done"


def test_a_live_job_is_not_called_interrupted(tmp_path):
    from cineneuron.store.catalog import Catalog

    cat = Catalog(tmp_path)
    jid = cat.start_job("folder", "/x")
    assert cat.job(jid).status == "running"  # this very process runs it
    assert cat.interrupted_jobs("folder", "/x") == []


def test_conflicts_are_retried_and_housekeeping_yields():
    from cineneuron.store.lance_util import retry, yielding

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("lance error: Retryable commit conflict for version 7: This Rewrite transaction "
                               "was preempted by concurrent transaction Update at version 7")
        return "ok"

    assert retry(flaky, base_s=0.001) == "ok" and len(calls) == 3

    def always():
        raise RuntimeError("lance error: Retryable commit conflict for version 9")

    assert yielding(always) is False  # compaction gives way; it is not an error
    with pytest.raises(RuntimeError):
        retry(always, tries=2, base_s=0.001)
    with pytest.raises(ValueError):
        retry(lambda: (_ for _ in ()).throw(ValueError("Schema error: No field named x")))


@pytest.mark.slow
def test_two_concurrent_ingests_of_one_source_both_succeed_5_of_5(tmp_path):
    from cineneuron.store import Store

    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(VIDEOS / "bikes.mp4", vids / "bikes.mp4")
    for run in range(5):
        store = tmp_path / f"store{run}"
        cn("init", "--store", store)
        args = [*CN, "ingest", "folder", "--root", str(vids), "--store", str(store), "--quiet", "--limit", "3",
                "--batch-size", "1"]
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, f"run {run}: exit {p.returncode}: {err[-1500:]}"
        ids = Store.open(str(store)).clips.to_arrow().column("clip_id").to_pylist()
        assert len(ids) == len(set(ids)) == 3, f"run {run}"
