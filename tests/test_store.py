"""The embedding store: self-description, idempotent writes, exact search, fMRI, versions."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TOY_DIMS, random_clips
from cineneuron.errors import CNError, StoreMismatchError
from cineneuron.schemas.records import FmriBatch
from cineneuron.store import Store
from cineneuron.store.lance_util import sql_str


@pytest.fixture
def store(tmp_path, toy_preset):
    return Store.create(str(tmp_path / "s"), toy_preset)


def test_create_records_preset_and_reopen(store, tmp_path):
    s2 = Store.open(store.uri)
    assert s2.preset.name == "toy"
    assert s2.dims == TOY_DIMS
    assert s2.preset.mix_dim == TOY_DIMS["text"] + TOY_DIMS["image"] + TOY_DIMS["action"]
    st = s2.stats()
    assert st["clips"] == 0 and st["preset"] == "toy" and st["dims"] == TOY_DIMS
    assert set(s2.preset.identity) >= {"image", "text", "action", "cond"}


def test_create_with_other_preset_is_refused_naming_both(store):
    with pytest.raises(StoreMismatchError) as e:
        Store.create(store.uri, "classic")
    msg = str(e.value)
    assert "'toy'" in msg and "'classic'" in msg and "\n" not in msg


def test_open_missing_store_is_one_line(tmp_path):
    with pytest.raises(CNError, match="cn init"):
        Store.open(str(tmp_path / "nope"))


def test_upsert_twice_is_idempotent_and_rows_are_sane(store):
    clips = random_clips(10_000)
    for i in range(0, 10_000, 2500):
        store.upsert_clips(clips[i:i + 2500])
    assert store.count() == 10_000
    store.upsert_clips(clips)  # again, all at once
    assert store.count() == 10_000
    row = store.get_clips([clips[7].clip_id]).to_pylist()[0]
    d = TOY_DIMS
    mix = np.asarray(row["mix"])
    assert mix.shape == (d["text"] + d["image"] + d["action"],)
    parts = np.split(mix, [d["text"], d["text"] + d["image"]])
    assert np.allclose([np.linalg.norm(p) for p in parts], 1.0, atol=1e-5)
    assert np.allclose(parts[0], clips[7].txt / np.linalg.norm(clips[7].txt), atol=1e-6)
    assert row["label_vec"][1] == (1.0 if "animal" in clips[7].labels else 0.0)


def test_batch_with_nan_writes_nothing(store):
    clips = random_clips(5)
    clips[3].txt[0] = np.nan
    with pytest.raises(CNError, match="NaN"):
        store.upsert_clips(clips)
    assert store.count() == 0


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _mix(c) -> np.ndarray:
    """The documented mix: [unit txt, unit mean of unit frames, unit act]."""
    return np.concatenate([_unit(c.txt), _unit(_unit(c.img_frames).mean(0)), _unit(c.act)]).astype(np.float32)


def _numpy_topk(store, clips, q, k, allowed=None, exclude=()):
    m = np.stack([_mix(c) for c in clips])
    s = q @ m.T
    ids = np.array([c.clip_id for c in clips])
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    for b in range(len(q)):
        s[b, np.isin(ids, list(exclude))] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return [list(ids[o]) for o in order]


def test_exact_search_matches_numpy_with_filter_and_exclusion(store):
    clips = random_clips(6_000, source="a") + random_clips(4_000, seed=1, source="b", start=6_000, split="test")
    store.upsert_clips(clips)
    rng = np.random.default_rng(5)
    q = rng.normal(size=(7, store.preset.mix_dim)).astype(np.float32)
    res = store.search_mix(q, k=10)
    assert res.clip_ids == _numpy_topk(store, clips, q, 10)
    assert res.scores.shape == (7, 10) and np.all(np.diff(res.scores, axis=1) <= 0)
    allowed = np.array([c.source == "b" for c in clips])
    res = store.search_mix(q, k=10, where="source IN ('b')")
    assert res.clip_ids == _numpy_topk(store, clips, q, 10, allowed)
    top = res.clip_ids[0][:3]
    res2 = store.search_mix(q, k=10, where="split = 'test'", exclude=top)
    assert res2.clip_ids == _numpy_topk(store, clips, q, 10, allowed, exclude=top)
    assert not set(top) & set(res2.clip_ids[0])


def test_search_sees_new_rows_at_once(store):
    store.upsert_clips(random_clips(50))
    q = np.ones((1, store.preset.mix_dim), np.float32)
    store.search_mix(q, k=5)
    new = random_clips(1, seed=9, source="late", start=10_000)
    store.upsert_clips(new)
    q = _mix(new[0])[None]
    assert store.search_mix(q, k=1).clip_ids[0][0] == new[0].clip_id


def test_search_wrong_dim_is_refused(store):
    with pytest.raises(CNError, match="mix dim"):
        store.search_mix(np.ones((1, 5), np.float32))


def test_rollback_restores_row_count_and_drop_source(store):
    store.upsert_clips(random_clips(100, source="a"))
    v = store.version
    store.upsert_clips(random_clips(40, seed=2, source="b", start=100))
    assert store.count() == 140
    store.rollback(v)
    assert store.count() == 100
    store.upsert_clips(random_clips(40, seed=2, source="b", start=100))
    assert store.drop_source("b") == 40 and store.count() == 100
    with pytest.raises(CNError):
        store.drop_source("nope")


def _fmri(n, v, n_tr=2, seed=0, split="train", start=0):
    rng = np.random.default_rng(seed)
    return FmriBatch(sample_id=[f"s{i}" for i in range(start, start + n)], clip_id=[f"c{i}" for i in range(start, start + n)],
                     split=[split] * n, repeat=np.zeros(n, int), tr_index=np.arange(n),
                     voxels=rng.normal(size=(n, n_tr, v)).astype(np.float32))


def test_fmri_wrong_voxel_count_refused_and_nothing_written(store):
    store.register_subject("ds", "1", n_tr=2, n_voxels=37, mask=None, mask_hash="h", qc={})
    store.add_fmri("ds", "1", _fmri(10, 37))
    with pytest.raises(StoreMismatchError, match="37"):
        store.add_fmri("ds", "1", _fmri(5, 36, start=10))
    assert store.fmri_table("ds", "1").count_rows() == 10
    with pytest.raises(StoreMismatchError):
        store.register_subject("ds", "1", n_tr=2, n_voxels=36, mask=None, mask_hash="h2", qc={})


def test_fmri_nan_refused(store):
    b = _fmri(4, 9)
    b.voxels[2, 1, 3] = np.nan
    with pytest.raises(CNError, match="NaN"):
        store.add_fmri("ds", "2", b)


def test_iter_fmri_streams_every_sample_once(store):
    full = _fmri(1000, 37, seed=3)
    store.add_fmri("ds", "1", full)
    store.add_fmri("ds", "1", _fmri(1000, 37, seed=3))  # re-ingest: no duplicates
    store.add_fmri("ds", "1", _fmri(100, 37, split="test", start=5000))
    seen, batches = [], 0
    for b in store.iter_fmri("ds", "1", split="train", batch_size=128):
        assert b["voxels"].shape[1:] == (2, 37) and len(b["voxels"]) <= 128
        seen += b["sample_id"]
        batches += 1
    assert batches > 1 and sorted(seen) == sorted(full.sample_id)
    got = next(store.iter_fmri("ds", "1", split="test", batch_size=500))
    assert len(got["sample_id"]) == 100


def test_catalog_jobs_and_runs(store):
    jid = store.catalog.start_job("src", "/x", n_total=3)
    job = store.catalog.finish_job(jid, n_ok=2, n_failed=1, n_skipped=0, errors=[{"item": "a", "reason": "bad"}], store_version=1)
    assert job.status == "partial"
    rid = store.catalog.add_run(stage=1, subject="1", dataset="ds", config={}, metrics={"a": 1}, checkpoint="/c", store_version=3)
    assert store.catalog.runs(subject="1")[0].id == rid


@pytest.mark.parametrize("index_type", ["ivf_flat", "ivf_pq", "ivf_hnsw_sq"])
def test_ann_path_finds_rows_added_after_the_index(store, index_type):
    clips = random_clips(3000, seed=4)
    store.upsert_clips(clips)
    store.index_type = index_type
    assert store.maybe_index(force=True) and store.has_ann_index()
    built = [ix.index_type for ix in store.clips.list_indices() if ix.columns == ["mix"]]
    assert [b.lower() for b in built] == [index_type.replace("_", "")], built
    late = random_clips(1, seed=8, source="late", start=50_000)
    store.upsert_clips(late)
    q = _mix(late[0])[None]
    res = store.search_mix(q, k=3)  # an index exists: the ANN path is chosen
    assert res.clip_ids[0][0] == late[0].clip_id
    exact = store.search_mix(_mix(clips[5])[None], k=10, exact=True).clip_ids[0]
    ann = store.search_mix(_mix(clips[5])[None], k=10, exact=False).clip_ids[0]
    assert ann[0] == exact[0] == clips[5].clip_id


def test_remote_style_uri_keeps_its_catalog_in_the_named_folder(tmp_path, toy_preset):
    s = Store.create("memory://cn-test-store", toy_preset, catalog_dir=str(tmp_path / "cat"))
    s.upsert_clips(random_clips(20))
    assert s.count() == 20 and (tmp_path / "cat" / "catalog.sqlite").exists()
    assert s.search_mix(_mix(random_clips(20)[3])[None], k=1).clip_ids[0][0] == random_clips(20)[3].clip_id


def test_index_that_cannot_be_built_is_one_line_and_search_stays_exact(store):
    from dataclasses import replace

    from cineneuron.errors import CNError

    base = random_clips(10, seed=5)
    dup = [replace(base[i % 10], clip_id=c.clip_id, video=c.video, start_s=c.start_s, end_s=c.end_s)
           for i, c in enumerate(random_clips(3000, seed=6))]  # 10 distinct vectors, 300 rows each
    store.upsert_clips(dup)
    store.ivf_partitions = 300
    with pytest.raises(CNError) as e:
        store.maybe_index(force=True)
    msg = str(e.value)
    assert "\n" not in msg and "300 partitions" in msg and "store.ivf_partitions" in msg
    assert not store.has_ann_index() and store.count() == 3000
    assert store.search_mix(_mix(dup[7])[None], k=1).clip_ids[0][0] in {c.clip_id for c in dup if c.txt is dup[7].txt}


def test_odd_source_names_are_quoted_everywhere(store):
    """Every filter goes through one quoting helper: a name with quotes is stored, found and dropped."""
    odd = 'it\'s "odd"'
    store.upsert_clips(random_clips(6, source=odd) + random_clips(4, source="plain", seed=1))
    assert set(store.sources()) == {odd, "plain"}
    assert store.count(f"source = {sql_str(odd)}") == 6
    assert store.stats()["by_source"] == {odd: 6, "plain": 4}
    assert store.drop_source(odd) == 6
    assert store.count() == 4 and store.sources() == ["plain"]
    store.set_meta(odd, '"x"')  # the meta table's key lookup quotes too
    assert store.get_meta(odd)[0] == '"x"'


def test_a_second_writer_that_lost_the_table_create_race_writes_into_the_winners(store, monkeypatch):
    """Two ingests of one subject can both see no fMRI table; the later create must not fail."""
    import cineneuron.store.fmri as F

    other = Store.open(store.uri)
    store.add_fmri("ds", "1", _fmri(10, 37))  # the winner created the table
    monkeypatch.setattr(F, "table_names", lambda db: [])  # the loser checked before it existed
    assert other.add_fmri("ds", "1", _fmri(5, 37, start=10)) == 15
    monkeypatch.undo()
    assert store.fmri_table("ds", "1").count_rows() == 15
