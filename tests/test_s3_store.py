"""The store on object storage: s3:// and s3+ddb:// on a moto server the test starts itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import random_clips
from s3_fixtures import moto_s3  # noqa: F401 - fixture
from cineneuron.store import Store
from cineneuron.store.object_store import storage_options

CN = [sys.executable, "-m", "cineneuron.cli"]
HELPER = [sys.executable, str(Path(__file__).parent / "helpers" / "cn_toy.py")]


def _mix(c):
    from cineneuron.store.rows import unit

    return np.concatenate([unit(c.txt), unit(unit(c.img_frames).mean(0)), unit(c.act)]).astype(np.float32)


def test_options_come_from_config_over_the_aws_environment(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    o = storage_options("s3://b/p", {"aws_access_key_id": "cfg-key"})
    assert o["aws_access_key_id"] == "cfg-key" and o["aws_endpoint"] == "http://127.0.0.1:9"
    assert o["allow_http"] == "true" and "dynamodb_endpoint" not in o
    assert storage_options("s3+ddb://b/p?ddbTableName=t")["dynamodb_endpoint"] == "http://127.0.0.1:9"
    assert storage_options("/local/path") is None  # local stores never see AWS settings


def test_store_on_s3_writes_reopens_and_searches(moto_s3, toy_preset):
    uri = "s3://cn-test/stores/a"
    s = Store.create(uri, toy_preset)
    clips = random_clips(30)
    s.upsert_clips(clips)
    s.upsert_clips(clips[:10])  # idempotent on S3 too
    again = Store.open(uri)
    assert again.count() == 30 and again.preset.name == s.preset.name
    assert again.search_mix(_mix(clips[7])[None], k=1).clip_ids[0][0] == clips[7].clip_id
    assert again.catalog.path is not None and str(again.catalog.path).startswith(moto_s3["env"]["CN_CATALOG_DIR"])


def test_store_on_s3_with_a_dynamodb_commit_table(moto_s3, toy_preset):
    import boto3

    boto3.client("dynamodb", endpoint_url=moto_s3["endpoint"], region_name="us-east-1").create_table(
        TableName="cn-commits", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "base_uri", "KeyType": "HASH"}, {"AttributeName": "version", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "base_uri", "AttributeType": "S"},
                              {"AttributeName": "version", "AttributeType": "N"}])
    uri = "s3+ddb://cn-test/stores/d?ddbTableName=cn-commits"
    s = Store.create(uri, toy_preset)
    s.upsert_clips(random_clips(12))
    assert Store.open(uri).count() == 12
    items = boto3.client("dynamodb", endpoint_url=moto_s3["endpoint"], region_name="us-east-1").scan(TableName="cn-commits")
    assert items["Count"] >= 2  # the commits went through DynamoDB


def _cn(*args, cmd=CN, check=True):
    r = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"cn {' '.join(map(str, args))} exited {r.returncode}: {r.stderr[-3000:]}")
    return r


@pytest.mark.slow  # the classic encoders and two training stages: ~90 s on 2 cores
def test_whole_pipeline_on_an_s3_store(moto_s3, tmp_path):
    world, uri = tmp_path / "world", "s3://cn-test/stores/pipe"
    _cn("synth", "--out", world, "--size", "small", "--clips", "40", "--seed", "2", "--quiet")
    _cn("init", "--store", uri)
    ing = _cn("ingest", "synth", "--root", world, "--subject", "1", "--store", uri, "--quiet",
              "--set", "fmri.cc2017.selection.method=all")
    assert "40 clips stored" in ing.stdout
    s1 = json.loads(_cn("train", "--stage", "1", "--subject", "1", "--store", uri, "--quiet", "--json",
                        "--set", "train.epochs=3", "--set", "brain.hidden=32").stdout)
    _cn("train", "--stage", "2", "--subject", "1", "--store", uri, "--quiet", "--json",
        "--set", "train.stage2_epochs=1", "--set", "brain.hidden=32")
    assert Path(s1["run_dir"]).is_relative_to(moto_s3["env"]["CN_CATALOG_DIR"])  # checkpoints stay local
    b = next(Store.open(uri).iter_fmri("synth", "1", split="test", batch_size=2))
    np.save(tmp_path / "q.npy", b["voxels"][:2])
    out = json.loads(_cn("query", "--fmri", tmp_path / "q.npy", "--subject", "1", "--store", uri, "--json",
                         "--top-k", "3").stdout)
    assert len(out["queries"]) == 2 and all(len(q["memories"]) == 3 for q in out["queries"])
    test_ids = set(Store.open(uri).existing_ids(where="split = 'test'"))
    assert not test_ids & {m["clip_id"] for q in out["queries"] for m in q["memories"]}
    boto_keys = _list_keys(moto_s3)
    assert any(k.startswith("stores/pipe/clips.lance/") for k in boto_keys)


def _list_keys(moto_s3) -> list[str]:
    import boto3

    c = boto3.client("s3", endpoint_url=moto_s3["endpoint"], region_name="us-east-1")
    pages = c.get_paginator("list_objects_v2").paginate(Bucket=moto_s3["bucket"])
    return [o["Key"] for p in pages for o in p.get("Contents", [])]


@pytest.mark.slow  # two processes on two cores: ~35 s
def test_two_concurrent_ingests_of_overlapping_sources_on_s3(moto_s3, tmp_path, toy_preset):
    world, uri = tmp_path / "world", "s3://cn-test/stores/conc"
    _cn("synth", "--out", world, "--size", "small", "--clips", "40", "--seed", "6", "--quiet", "--subjects", "0")
    _cn("init", "--store", uri, "--preset", toy_preset, cmd=HELPER)
    procs = [subprocess.Popen([*HELPER, "ingest", "synth", "--root", str(world), "--store", uri, "--quiet",
                               "--batch-size", "4", *lim], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for lim in (["--limit", "30"], [])]  # the first 30 clips in both, 10 only in the second
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    ids = Store.open(uri).clips.to_arrow().column("clip_id").to_pylist()
    assert len(ids) == len(set(ids)) == 40
