"""The shared catalog (`store.catalog_url`): PostgreSQL under concurrent writers, SQLite's limits."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pg_fixtures import pg_url  # noqa: F401 - fixture
from cineneuron.schemas.catalog import Dataset, Subject
from cineneuron.store import Store
from cineneuron.store.catalog import Catalog

HELPER = [sys.executable, str(Path(__file__).parent / "helpers" / "cn_toy.py")]


def _hammer_upserts(cat: Catalog, n_threads: int = 4, n: int = 25) -> list[BaseException]:
    """n_threads writers upserting the same keys at once; returns what they raised."""
    errors: list[BaseException] = []

    def work(k):
        try:
            c = Catalog(url=cat.url) if cat.path is None else Catalog(cat.path.parent)
            for i in range(n):
                c.upsert(Dataset(name=f"d{i % 3}", root=f"/r{k}"))
                c.upsert(Subject(dataset="d0", subject=str(i % 2), n_voxels=10 + k, n_tr=1, mask_hash="h"))
        except BaseException as e:  # noqa: BLE001 - collected and asserted on
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def test_postgres_upserts_under_concurrency_never_collide(pg_url):
    cat = Catalog(url=pg_url)
    assert cat.dialect == "postgresql" and cat.path is None
    assert _hammer_upserts(cat) == []
    assert sorted(d.name for d in cat.datasets()) == ["d0", "d1", "d2"]
    assert sorted(s.subject for s in cat.subjects()) == ["0", "1"]
    assert Catalog(url=pg_url.replace("postgres@", "postgres:secret@")).where().count("secret") == 0


def test_sqlite_upserts_under_concurrency_never_collide(tmp_path):
    cat = Catalog(tmp_path)
    assert _hammer_upserts(cat) == []
    assert sorted(d.name for d in cat.datasets()) == ["d0", "d1", "d2"]


def test_bad_catalog_url_is_one_line(tmp_path, toy_preset):
    from cineneuron.errors import CNError

    with pytest.raises(CNError, match="catalog_url"):
        Store.create(str(tmp_path / "s"), toy_preset, catalog_url="nosuchdb://x/y")
    with pytest.raises(CNError, match="unavailable"):  # nothing listens on port 1
        Store.create(str(tmp_path / "s2"), toy_preset, catalog_url="postgresql+psycopg://u@127.0.0.1:1/db")


def _concurrent_ingests(tmp_path, toy_preset, catalog_args: list[str], n: int = 4):
    world, store = tmp_path / "world", tmp_path / "store"
    subprocess.run([*HELPER, "synth", "--out", str(world), "--size", "small", "--clips", "40", "--seed", "3",
                    "--quiet"], check=True, capture_output=True, timeout=120)
    subprocess.run([*HELPER, "init", "--store", str(store), "--preset", toy_preset, *catalog_args],
                   check=True, capture_output=True, timeout=120)
    procs = [subprocess.Popen([*HELPER, "ingest", "synth", "--root", str(world), "--subject", "1", "--store",
                               str(store), "--quiet", "--batch-size", "4", *catalog_args,
                               "--set", "fmri.cc2017.selection.method=all"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    return store, outs


def _check_store(store, outs, cat: Catalog, n: int = 4):
    s = Store.open(str(store), catalog_url=cat.url if cat.path is None else None)
    ids = s.clips.to_arrow().column("clip_id").to_pylist()
    assert len(ids) == len(set(ids)) == 40  # every clip exactly once
    fm = s.fmri_table("synth", "1").to_arrow().column("sample_id").to_pylist()
    assert len(fm) == len(set(fm)) > 0
    jobs = cat.jobs(limit=100)
    assert not [j for j in jobs if j.status == "running"], [(j.id, j.kind, j.status) for j in jobs]
    return jobs


@pytest.mark.slow  # four processes on two cores: ~45 s
def test_four_concurrent_ingests_on_a_postgres_catalog(tmp_path, toy_preset, pg_url):
    store, outs = _concurrent_ingests(tmp_path, toy_preset, ["--set", f"store.catalog_url={pg_url}"])
    for rc, out, err in outs:
        assert rc == 0, err[-2000:]
    cat = Catalog(url=pg_url)
    jobs = _check_store(store, outs, cat)
    assert sorted((j.kind, j.status) for j in jobs) == [("clips", "done")] * 4 + [("fmri", "done")] * 4
    assert [d.name for d in cat.datasets()] == ["synth"] and [s.subject for s in cat.subjects()] == ["1"]
    assert not (store / "catalog.sqlite").exists()  # the shared catalog, not a local one


@pytest.mark.slow
def test_four_concurrent_ingests_on_sqlite_pass_or_say_catalog_busy(tmp_path, toy_preset):
    store, outs = _concurrent_ingests(tmp_path, toy_preset, [])
    for rc, out, err in outs:
        assert rc == 0 or (rc == 2 and err.strip().startswith("error: catalog busy") and len(err.strip().splitlines()) == 1), err[-2000:]
    _check_store(store, outs, Catalog(store))
    print(json.dumps([rc for rc, *_ in outs]))
