"""The paper preset through the store: toy weights in the real formats, ingested like real ones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("open_clip")
import paper_fixtures as P  # noqa: E402

from conftest import VIDEOS  # noqa: E402
from cineneuron.errors import MissingWeightsError, StoreMismatchError  # noqa: E402

pytestmark = pytest.mark.skipif(not (VIDEOS / "bikes.mp4").exists(), reason="sample videos not present")


@pytest.fixture
def paper_store(tmp_path, monkeypatch):
    from cineneuron.store import Store

    monkeypatch.setenv("CN_CACHE_DIR", str(tmp_path / "cache"))
    w = tmp_path / "weights"
    w.mkdir()
    P.register_openclip_toy(w)
    clip = P.save_openclip(w / "clip.safetensors", seed=20)
    vic = P.save_viclip(w / "viclip.pth", seed=21)
    wan = P.save_wan_text(w / "wan", seed=22)
    preset = P.toy_paper_preset(clip, vic, wan)
    (tmp_path / "toy_paper.json").write_text(json.dumps(preset))
    videos = tmp_path / "videos"
    videos.mkdir()
    for v in ("bikes.mp4", "bigbuckbunny.mp4"):
        shutil.copy(VIDEOS / v, videos / v)
    (videos / "captions.csv").write_text("video,caption\nbikes.mp4,people ride bikes down a street\n"
                                         "bigbuckbunny.mp4,a big rabbit stands in a field\n")
    store = Store.create(str(tmp_path / "store"), str(tmp_path / "toy_paper.json"))
    return store, videos, {"clip": clip, "viclip": vic}


def _ingest(store, videos, **kw):
    from cineneuron.ingest.clips import IngestOptions, ingest_clips
    from cineneuron.sources import get_source

    return ingest_clips(store, get_source("folder")(str(videos)), IngestOptions(limit=3, backend="pyav", **kw))


def test_stored_vectors_equal_the_toy_models_forward(paper_store):
    from cineneuron.sources.video import read_clip_frames
    from cineneuron.store.rows import decode_cond, fixed_to_numpy, tensor_to_numpy

    store, videos, _ = paper_store
    rep = _ingest(store, videos)
    assert rep.n_ok == 3 and rep.n_failed == 0
    t = store.clips.to_arrow().sort_by([("video", "ascending"), ("start_s", "ascending")])
    enc = store.encoders().build()
    rows = t.to_pylist()
    frames = np.stack([read_clip_frames(str(videos / r["video"]), [(r["start_s"], r["end_s"])], P.FRAMES, P.SIZE,
                                        backend="pyav")[0] for r in rows])  # (3, T, S, S, 3)
    caps = [r["caption"] for r in rows]
    np.testing.assert_allclose(tensor_to_numpy(t.column("img_frames")), enc.image.encode_frames(frames), atol=1e-5)
    want_txt = enc.text.encode_text(caps)
    want_act = enc.action.encode_video(frames)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(fixed_to_numpy(t.column("txt")), unit(want_txt), atol=1e-5)
    np.testing.assert_allclose(fixed_to_numpy(t.column("act")), unit(want_act), atol=1e-5)
    for r, want in zip(rows, enc.cond.encode_cond(caps)):
        got = decode_cond(r["cond"], store.dims["cond"])
        assert got.shape == want.shape and r["cond_len"] == want.shape[0]
        np.testing.assert_array_equal(got, want)
    empty, blob = store.get_meta("empty_cond")
    assert np.frombuffer(blob, np.float16).size == enc.cond.encode_empty().size


def test_changed_weights_are_refused_on_the_next_ingest(paper_store):
    store, videos, w = paper_store
    _ingest(store, videos)
    P.save_openclip(w["clip"], seed=99)  # same path, other contents
    with pytest.raises(StoreMismatchError) as e:
        _ingest(store, videos, force=True)
    assert "\n" not in str(e.value) and "image encoder differs" in str(e.value)


def test_missing_weights_fail_before_any_work(paper_store):
    store, videos, w = paper_store
    w["viclip"].unlink()
    with pytest.raises(MissingWeightsError) as e:
        _ingest(store, videos)
    assert str(w["viclip"]) in str(e.value) and "\n" not in str(e.value)
    assert store.count() == 0
