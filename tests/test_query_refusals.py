"""Every bad query input is exit 2 with one line on stderr, and the store is left as it was.

The store is built in-process with the toy encoders (fast), a small simulated world and a short
stage 1. Every case then runs the CLI's own `main()` (what the `cn` script calls, with its
one-line error handling) in this process, which saves an interpreter start-up per case; one
case runs the real `cn` in a subprocess too, to show both give the same line and exit code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import toy_preset_dict

CN = [sys.executable, "-m", "cineneuron.cli"]
pytestmark = pytest.mark.slow  # builds and trains a toy store, then ~20 CLI calls


def cn(*args):
    """`cn ARGS` through `cineneuron.cli.main`, in this process: (returncode, stdout, stderr)."""
    import contextlib
    import io
    from types import SimpleNamespace
    from unittest import mock

    from cineneuron import cli

    out, err, code = io.StringIO(), io.StringIO(), 0
    with mock.patch.object(sys, "argv", ["cn", *map(str, args)]), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def cn_subprocess(*args):
    return subprocess.run([*CN, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    from cineneuron.config import load_config
    from cineneuron.ingest.clips import IngestOptions, ingest_clips
    from cineneuron.ingest.fmri import ingest_subject
    from cineneuron.sources import get_source
    from cineneuron.sources.synth import generate
    from cineneuron.store import Store
    from cineneuron.train.stage1 import train_stage1

    d = tmp_path_factory.mktemp("q")
    world = d / "world"
    generate(str(world), size="small", clips=40, subjects=1, seed=3)
    (d / "toy.json").write_text(json.dumps(toy_preset_dict()))
    store = Store.create(str(d / "store"), str(d / "toy.json"))
    ingest_clips(store, get_source("synth")(str(world)), IngestOptions(backend="pyav"))
    cfg = load_config(None, {"fmri.cc2017.selection.method": "all", "train.epochs": 2, "brain.hidden": 32,
                             "train.batch_size": 16})
    ingest_subject(store, "synth", str(world), "1", cfg)
    train_stage1(store, cfg, "1", with_ridge=False)
    n_vox = store.catalog.subject("synth", "1").n_voxels
    np.save(d / "q.npy", np.random.default_rng(0).normal(size=(2, n_vox)).astype(np.float32))
    return d, world, store, n_vox


def _state(store_path):
    from cineneuron.store import Store

    s = Store.open(str(store_path))
    return s.count(), s.version, s.count("split = 'test'")


def _refused(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def _query(d, *extra, fmri=None):
    return cn("query", "--fmri", fmri or d / "q.npy", "--subject", "1", "--store", d / "store", "--json", *extra)


WHERE_CASES = {
    "1=1) OR (1=1": "not a valid SQL condition",
    "nosuchcol = 1": "unknown column 'nosuchcol'",
    "split = \"test\"": "unknown column 'test'",
    "split = 'train'; DELETE FROM clips": "one condition",
    "(SELECT 1) = 1": "not allowed",
    "start_s = 'abc'": "cannot be evaluated",
}


@pytest.mark.parametrize("where", list(WHERE_CASES))
def test_bad_where_is_one_line_and_the_store_is_untouched(trained, where):
    d, *_ = trained
    before = _state(d / "store")
    _refused(_query(d, "--where", where), WHERE_CASES[where])
    assert _state(d / "store") == before


def test_where_that_tried_to_escape_the_guard_only_narrows(trained):
    d, *_ = trained
    n_test = _state(d / "store")[2]
    assert n_test > 0
    for where in ("split = 'train' -- ) OR (1=1", "1=1 OR split = 'test'", "split = 'test'"):
        r = _query(d, "--where", where, "--top-k", "50")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["where"].startswith("(split <> 'test') AND (")
        ids = [m["clip_id"] for q in out["queries"] for m in q["memories"]]
        from cineneuron.store import Store

        splits = set(Store.open(str(d / "store")).get_clips(ids, ["split"]).column("split").to_pylist()) if ids else set()
        assert "test" not in splits, where
        if where == "split = 'test'":
            assert ids == []  # the user asked for test clips only: narrowing the guard leaves nothing


@pytest.mark.parametrize("case", ["empty", "scalar", "strings", "complex", "extreme"])
def test_bad_query_fmri_is_one_line(trained, case, tmp_path):
    d, _, _, v = trained
    arr = {"empty": np.zeros((0, v), np.float32), "scalar": np.float32(1.0), "strings": np.array(["a"] * v),
           "complex": np.ones((1, v), np.complex64) * (1 + 1j), "extreme": np.full((1, v), 1e30, np.float32)}[case]
    np.save(tmp_path / "x.npy", arr)
    before = _state(d / "store")
    needle = {"empty": "no samples", "scalar": "single number", "strings": "not numbers", "complex": "complex",
              "extreme": "z-scores"}[case]
    _refused(_query(d, fmri=tmp_path / "x.npy"), needle)
    assert _state(d / "store") == before


def test_nan_from_the_model_is_an_error_not_empty_memories(trained, tmp_path):
    """A damaged checkpoint (NaN weights) used to give exit 0 with NaN router weights and no memories."""
    from safetensors.numpy import load_file, save_file

    d, *_ = trained
    runs = d / "store" / "runs"
    broken = tmp_path / "store"
    shutil.copytree(d / "store", broken)
    for f in (broken / "runs").rglob("model.safetensors"):
        w = load_file(str(f))
        save_file({k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in w.items()}, str(f))
    assert runs.exists()
    r = cn("query", "--fmri", d / "q.npy", "--subject", "1", "--store", broken, "--json")
    _refused(r, "NaN")


@pytest.mark.parametrize("args,needle", [
    (("--out", "x.txt"), ".mp4"),
    (("--set", "decode=1", "--set", "decode.top_k=3"), "not a section"),
    (("--set", "decode.pool_filter=null"), "decode.pool_filter"),
    (("--set", "encoders.preset=paper"), "'paper'"),
])
def test_bad_options_are_one_line(trained, args, needle):
    d, *_ = trained
    before = _state(d / "store")
    _refused(_query(d, *args), needle)
    assert _state(d / "store") == before


def test_exact_null_means_choose(trained):
    d, *_ = trained
    r = _query(d, "--set", "decode.exact=null", "--top-k", "2")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["queries"][0]["memories"]) == 2
    assert "null chooses" in cn("config").stdout


def test_a_copied_subject_is_warned_about_and_shown_in_stats(trained, tmp_path):
    from cineneuron.config import load_config
    from cineneuron.ingest.fmri import ingest_subject

    d, world, store, _ = trained
    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    shutil.copytree(copy / "subject1", copy / "subject2")
    cfg = load_config(None, {"fmri.cc2017.selection.method": "all"})
    assert ingest_subject(store, "synth", str(world), "1", cfg).warning is None
    rep = ingest_subject(store, "synth", str(copy), "2", cfg)
    assert rep.duplicates == ["synth/1"] and rep.warning.count("\n") == 0
    again = ingest_subject(store, "synth", str(copy), "1", cfg, source_name="synthcopy")
    assert set(again.duplicates) == {"synth/1", "synth/2"}
    st = json.loads(cn("pool", "stats", "--store", d / "store", "--json").stdout)
    assert st["fmri"]["synth/2"]["duplicate_of"] == ["synth/1"] or set(st["fmri"]["synth/2"]["duplicate_of"]) == {"synth/1", "synthcopy/1"}
    assert "DUPLICATE of" in cn("pool", "stats", "--store", d / "store").stdout


def test_the_real_cli_gives_the_same_refusal(trained):
    """In a subprocess, as a user's shell runs it: the same exit code and the same single line."""
    d = trained[0]
    args = ("query", "--fmri", d / "q.npy", "--subject", "1", "--store", d / "store", "--json", "--where", "nosuchcol = 1")
    a, b = cn(*args), cn_subprocess(*args)
    _refused(b, "unknown column 'nosuchcol'")
    assert (a.returncode, a.stderr) == (b.returncode, b.stderr)
