"""Mixture-of-Memories: one concatenated search equals the weighted sum of three cosines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_clips
from cineneuron.decode.mom import retrieve
from cineneuron.decode.router import Router, query_vector, router_infonce
from cineneuron.store import Store


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def pool(tmp_path_factory, request):
    import json

    from conftest import toy_preset_dict

    d = tmp_path_factory.mktemp("mom")
    (d / "toy.json").write_text(json.dumps(toy_preset_dict()))
    store = Store.create(str(d / "s"), str(d / "toy.json"))
    clips = random_clips(10_000, seed=3)
    store.upsert_clips(clips)
    return store, clips


def test_single_search_equals_weighted_sum_of_cosines(pool):
    store, clips = pool
    rng = np.random.default_rng(11)
    T = _unit(np.stack([c.txt for c in clips]))  # (N, d_t)
    I = _unit(np.stack([_unit(_unit(c.img_frames).mean(0)) for c in clips]))  # (N, d_i)
    A = _unit(np.stack([c.act for c in clips]))  # (N, d_a)
    ids = np.array([c.clip_id for c in clips])
    B = 6
    preds = {"txt": rng.normal(size=(B, T.shape[1])), "img": rng.normal(size=(B, I.shape[1])),
             "act": rng.normal(size=(B, A.shape[1]))}
    w = rng.dirichlet([1, 1, 1], size=B)  # random router weights, rows sum to 1
    preds = {k: v.astype(np.float32) for k, v in preds.items()} | {"w": w.astype(np.float32)}
    res = retrieve(store, preds, 10)
    qt, qi, qa = (_unit(preds[m]) for m in ("txt", "img", "act"))
    brute = w[:, :1] * (qt @ T.T) + w[:, 1:2] * (qi @ I.T) + w[:, 2:] * (qa @ A.T)  # (B, N)
    for b in range(B):
        order = np.argsort(-brute[b], kind="stable")[:10]
        assert [m.clip_id for m in res[b].memories] == list(ids[order])
        got = np.array([m.score for m in res[b].memories])
        assert np.allclose(got, brute[b, order], atol=1e-5)
        m0, j0 = res[b].memories[0], order[0]
        assert np.allclose([m0.cos_txt, m0.cos_img, m0.cos_act], [qt[b] @ T[j0], qi[b] @ I[j0], qa[b] @ A[j0]], atol=1e-5)
        assert res[b].weights == pytest.approx(dict(zip(("txt", "img", "act"), w[b])), abs=1e-6)


def test_filters_and_exclusions_reach_the_search(pool):
    store, clips = pool
    q = {m: np.random.default_rng(1).normal(size=(1, d)).astype(np.float32)
         for m, d in (("txt", 20), ("img", 24), ("act", 28))} | {"w": np.full((1, 3), 1 / 3, np.float32)}
    top = retrieve(store, q, 3)[0].memories
    again = retrieve(store, q, 3, exclude=[[top[0].clip_id]])[0].memories
    assert again[0].clip_id == top[1].clip_id
    only_test = retrieve(store, q, 3, where="split = 'test'")
    assert only_test[0].memories == []  # random_clips are all 'train'


def test_router_is_a_softmax_that_varies_with_F():
    torch.manual_seed(0)
    r = Router(12)
    F = torch.randn(5, 7, 12)  # (B, L, D_f)
    w0 = r(F)
    assert torch.allclose(w0, torch.full((5, 3), 1 / 3))  # zero init: the plain sum of cosines
    torch.nn.init.normal_(r.proj.weight)
    w = r(F)
    assert torch.allclose(w.sum(1), torch.ones(5)) and (w > 0).all()
    assert w.std(0).max() > 1e-3


def test_router_infonce_prefers_the_own_memory():
    torch.manual_seed(0)
    pool_mix = torch.nn.functional.normalize(torch.randn(50, 9), dim=-1)
    pos = torch.tensor([3, 17])
    q_good = pool_mix[pos]
    q_bad = pool_mix[torch.tensor([30, 40])]
    assert router_infonce(q_good, pool_mix, pos, 0.07) < router_infonce(q_bad, pool_mix, pos, 0.07)
    q = query_vector(torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 2), torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5]]))
    assert q.shape == (2, 9) and torch.allclose(q[0, 3:], torch.zeros(6))
