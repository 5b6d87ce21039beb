"""The `paper` preset's encoders, on toy models with random weights saved in the real formats.

Each toy model is saved as the real weights are shipped (an open_clip state-dict file, a ViCLIP
`{"model": state_dict}` .pth under the official key names, an X-CLIP `save_pretrained` folder, a
Wan2.1 `text_encoder/` + `tokenizer/` folder), loaded back through the encoder exactly as real
weights are, and compared with the toy model's own forward pass on frames decoded from the
sample videos.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

import paper_fixtures as P  # noqa: E402

from cineneuron.encoders import create_encoder, create_encoders  # noqa: E402
from cineneuron.errors import CNError, MissingWeightsError  # noqa: E402
from cineneuron.schemas.presets import load_preset  # noqa: E402

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _hash_cache(tmp_path, monkeypatch):
    """Keep the weights-hash cache out of the home directory."""
    monkeypatch.setenv("CN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CN_WEIGHTS_DIR", raising=False)


@pytest.fixture(scope="module")
def clips():
    return P.decode_clips()  # (2, 8, 32, 32, 3) uint8 from the two sample videos


@pytest.fixture(scope="module")
def wdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    P.register_openclip_toy(d)
    return d


def _cfg_image(weights, **kw):
    return {**dict(model=P.OPENCLIP_NAME, weights=str(weights), mean=P.OPENAI_MEAN, std=P.OPENAI_STD, size=P.SIZE), **kw}


def _cfg_viclip(weights, **kw):
    return {**dict(weights=str(weights), arch=P.VICLIP_TOY_ARCH, mean=P.IMAGENET_MEAN, std=P.IMAGENET_STD, size=P.SIZE), **kw}


def _cfg_xclip(folder, **kw):
    return {**dict(model_dir=str(folder), mean=P.IMAGENET_MEAN, std=P.IMAGENET_STD, size=P.SIZE), **kw}


def _one_line(err: Exception, *parts: str) -> None:
    msg = str(err)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)


# --- OpenCLIP -----------------------------------------------------------------------------------
def test_openclip_image_and_text_match_open_clip(wdir, clips):
    from PIL import Image

    path = P.save_openclip(wdir / "toy_clip.safetensors", seed=1)
    enc = create_encoder("openclip-image", _cfg_image(path, batch_size=5), P.EMBED).build()
    got = enc.encode_frames(clips)  # (2, 8, 24)
    assert got.shape == (2, P.FRAMES, P.EMBED) and got.dtype == np.float32

    # Reference: open_clip's own model and eval transform on PIL frames.
    model, _, preprocess = open_clip.create_model_and_transforms(
        P.OPENCLIP_NAME, pretrained=str(path), image_mean=P.OPENAI_MEAN, image_std=P.OPENAI_STD
    )
    x = torch.stack([preprocess(Image.fromarray(f)) for f in clips.reshape(-1, P.SIZE, P.SIZE, 3)])
    with torch.no_grad():
        ref = model.eval().encode_image(x, normalize=True).numpy().reshape(got.shape)
    np.testing.assert_allclose(got, ref, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)

    txt = create_encoder("openclip-text", dict(model=P.OPENCLIP_NAME, weights=str(path), batch_size=2), P.EMBED).build()
    assert txt._model is enc._model  # one loaded model shared by the two towers
    got_t = txt.encode_text(P.CAPTIONS)  # (3, 24)
    with torch.no_grad():
        ref_t = model.encode_text(open_clip.get_tokenizer(P.OPENCLIP_NAME)(P.CAPTIONS), normalize=True).numpy()
    np.testing.assert_allclose(got_t, ref_t, atol=ATOL)


def test_openclip_quick_gelu_and_local_dir(wdir, clips):
    path = P.save_openclip(wdir / "toy_clip_qg.bin", seed=2)
    plain = create_encoder("openclip-image", _cfg_image(path), P.EMBED).build().encode_frames(clips[:1])
    quick = create_encoder("openclip-image", _cfg_image(path, force_quick_gelu=True), P.EMBED).build().encode_frames(clips[:1])
    model = open_clip.create_model(P.OPENCLIP_NAME, pretrained=str(path), force_quick_gelu=True).eval()
    pix = torch.from_numpy(clips[0]).permute(0, 3, 1, 2).float() / 255
    pix = (pix - torch.tensor(P.OPENAI_MEAN).view(1, 3, 1, 1)) / torch.tensor(P.OPENAI_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model.encode_image(pix, normalize=True).numpy()
    np.testing.assert_allclose(quick[0], ref, atol=ATOL)
    assert np.abs(quick - plain).max() > 1e-3  # the flag reaches the model

    folder = P.save_openclip_dir(wdir / "toy_clip_dir", seed=3)
    cfg = dict(model=f"local-dir:{folder}", mean=P.OPENAI_MEAN, std=P.OPENAI_STD, size=P.SIZE)
    enc = create_encoder("openclip-image", cfg, P.EMBED).build()
    ref_model = open_clip.create_model(P.OPENCLIP_NAME, pretrained=str(folder / "open_clip_model.safetensors")).eval()
    with torch.no_grad():
        ref = ref_model.encode_image(pix, normalize=True).numpy()
    np.testing.assert_allclose(enc.encode_frames(clips[:1])[0], ref, atol=ATOL)
    ident = enc.identity()
    assert ident["weights"]["files"] == ["open_clip_config.json", "open_clip_model.safetensors"]
    assert str(folder) not in json.dumps(ident)  # moving the folder keeps the identity


def test_openclip_resizes_other_frame_sizes_close_to_open_clip(wdir):
    from PIL import Image

    big = P.decode_clips(size=48, n=3)  # (2, 3, 48, 48, 3): not the model's 32 px
    path = P.save_openclip(wdir / "toy_clip_resize.safetensors", seed=9)
    got = create_encoder("openclip-image", _cfg_image(path), P.EMBED).build().encode_frames(big)  # (2, 3, 24)
    model, _, preprocess = open_clip.create_model_and_transforms(
        P.OPENCLIP_NAME, pretrained=str(path), image_mean=P.OPENAI_MEAN, image_std=P.OPENAI_STD
    )
    x = torch.stack([preprocess(Image.fromarray(f)) for f in big.reshape(-1, 48, 48, 3)])  # PIL bicubic
    with torch.no_grad():
        ref = model.eval().encode_image(x, normalize=True).numpy().reshape(got.shape)
    assert (got * ref).sum(-1).min() > 0.98  # antialiased torch resize vs PIL: close, not bit-equal


# --- ViCLIP -------------------------------------------------------------------------------------
def test_viclip_official_keys_load_strict():
    from cineneuron.encoders.paper.viclip_model import ViCLIP, build_viclip

    sd = P.official_viclip_state_dict(P.VICLIP_TOY_ARCH)
    model = build_viclip(sd, **P.VICLIP_TOY_ARCH)  # strict=True inside
    res = model.load_state_dict(sd, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # The released L/14 layout: same names and shapes, checked on the meta device (no memory).
    with torch.device("meta"):
        big = ViCLIP(**P.VICLIP_L14_ARCH)
    want = P.official_viclip_shapes(P.VICLIP_L14_ARCH)
    assert {k: tuple(v.shape) for k, v in big.state_dict().items()} == want


def test_viclip_matches_upstream_forward(wdir, clips):
    path = P.save_viclip(wdir / "ViClip-toy.pth", seed=4)
    enc = create_encoder("viclip", _cfg_viclip(path, batch_size=1), P.EMBED).build()
    got = enc.encode_video(clips)  # (2, 24)
    assert got.shape == (2, P.EMBED) and got.dtype == np.float32

    sd = torch.load(str(path), weights_only=True)["model"]
    video = P.viclip_upstream_pixels(clips)  # (2, 8, 3, 32, 32)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(P.viclip_upstream_video(sd, video, heads=2), dim=-1).numpy()
        own = torch.nn.functional.normalize(enc._model.encode_video(video), dim=-1).numpy()
    np.testing.assert_allclose(got, ref, atol=ATOL)
    np.testing.assert_allclose(got, own, atol=ATOL)

    # 16 frames given: upstream keeps every 2nd.
    doubled = np.repeat(clips, 2, axis=1)
    np.testing.assert_allclose(enc.encode_video(doubled), got, atol=ATOL)

    # Text tower: CLIP BPE at context 32, EOT kept last when truncated.
    tok = open_clip.tokenizer.SimpleTokenizer(context_length=32)
    long = " ".join(["rabbit"] * 50)
    ids = tok([P.CAPTIONS[0], long])
    assert ids.shape == (2, 32) and int(ids[1, -1]) == 49407
    with torch.no_grad():
        ref_t = torch.nn.functional.normalize(enc._model.encode_text(ids), dim=-1).numpy()
    np.testing.assert_allclose(enc.encode_text([P.CAPTIONS[0], long]), ref_t, atol=ATOL)


def test_viclip_safetensors_conversion_gives_same_output(wdir, clips, tmp_path):
    from cineneuron.encoders.paper.viclip_model import convert_to_safetensors

    pth = P.save_viclip(wdir / "ViClip-conv.pth", seed=5)
    st = convert_to_safetensors(pth, tmp_path / "ViClip-conv.safetensors")
    a = create_encoder("viclip", _cfg_viclip(pth), P.EMBED).build().encode_video(clips)
    b = create_encoder("viclip", _cfg_viclip(st), P.EMBED).build().encode_video(clips)
    np.testing.assert_array_equal(a, b)


def test_viclip_bf16_is_close_to_fp32(wdir, clips):
    path = P.save_viclip(wdir / "ViClip-bf16.pth", seed=7)
    full = create_encoder("viclip", _cfg_viclip(path), P.EMBED).build()
    half = create_encoder("viclip", _cfg_viclip(path, precision="bf16"), P.EMBED).build()
    for a, b in ((full.encode_video(clips), half.encode_video(clips)), (full.encode_text(P.CAPTIONS), half.encode_text(P.CAPTIONS))):
        assert b.dtype == np.float32 and (a * b).sum(-1).min() > 0.97  # unit vectors: cosine


def test_viclip_wrong_arch_is_one_line(wdir):
    path = P.save_viclip(wdir / "ViClip-arch.pth", seed=6)
    arch = dict(P.VICLIP_TOY_ARCH, vision_width=48)
    with pytest.raises(CNError) as e:
        create_encoder("viclip", _cfg_viclip(path, arch=arch), P.EMBED).build()
    _one_line(e.value, "do not match", str(path))


# --- X-CLIP -------------------------------------------------------------------------------------
def test_xclip_matches_transformers(wdir, clips):
    from transformers import AutoProcessor, XCLIPModel

    folder = P.save_xclip(wdir / "xclip", seed=7)
    enc = create_encoder("xclip", _cfg_xclip(folder, batch_size=1), P.EMBED).build()
    got = enc.encode_video(clips)  # (2, 24)
    assert got.shape == (2, P.EMBED)

    proc = AutoProcessor.from_pretrained(str(folder))
    model = XCLIPModel.from_pretrained(str(folder)).eval()
    pix = torch.cat([proc(videos=list(c), return_tensors="pt")["pixel_values"] for c in clips])  # (2, 8, 3, 32, 32)
    with torch.no_grad():
        ref = model.get_video_features(pixel_values=pix).pooler_output
        ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(got, ref, atol=ATOL)

    texts = P.CAPTIONS[:2]
    tok = proc.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref_t = model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output
    np.testing.assert_allclose(enc.encode_text(texts), torch.nn.functional.normalize(ref_t, dim=-1).numpy(), atol=ATOL)

    with pytest.raises(CNError) as e:  # settings that disagree with the folder's processor
        create_encoder("xclip", _cfg_xclip(folder, mean=P.OPENAI_MEAN), P.EMBED).build()
    _one_line(e.value, "mean", "processor_config.json")


# --- UMT5 ---------------------------------------------------------------------------------------
def test_umt5_matches_wan_pipeline(wdir):
    folder = P.save_wan_text(wdir / "wan", seed=8)
    enc = create_encoder("umt5", dict(model_dir=str(folder), batch_size=len(P.CAPTIONS)), P.EMBED + 8).build()
    got = enc.encode_cond(P.CAPTIONS)
    ref = P.wan_reference(folder, P.CAPTIONS)  # (3, 512, 32) zero-padded, as Wan feeds its DiT
    lengths = [g.shape[0] for g in got]
    assert lengths == [12, 10, 1]  # words + </s>; "&amp;" unescaped to "&" by Wan's prompt_clean
    for g, r, n in zip(got, ref, lengths):
        assert g.dtype == np.float16 and g.shape == (n, P.EMBED + 8)
        np.testing.assert_allclose(g.astype(np.float32), r[:n].half().float().numpy(), atol=ATOL)
        assert not r[n:].any()  # Wan's padding holds nothing the store drops
    np.testing.assert_array_equal(enc.encode_empty(), got[2])


# --- weights: missing files, identity ------------------------------------------------------------
def test_missing_weights_are_one_line_before_any_build(tmp_path, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("a model was built before the weights were checked")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", no_build)
    missing = tmp_path / "nowhere"
    cases = [
        ("openclip-image", _cfg_image(missing / "clip.safetensors"), "clip.safetensors"),
        ("openclip-text", dict(model=P.OPENCLIP_NAME, weights=str(missing / "clip.bin")), "clip.bin"),
        ("openclip-image", dict(model=f"local-dir:{tmp_path}", mean=P.OPENAI_MEAN, std=P.OPENAI_STD, size=P.SIZE), "open_clip_config.json"),
        ("viclip", _cfg_viclip(missing / "ViClip-InternVid-10M-FLT.pth"), "ViClip-InternVid-10M-FLT.pth"),
        ("xclip", _cfg_xclip(tmp_path), "config.json"),
        ("umt5", dict(model_dir=str(tmp_path)), "text_encoder"),
    ]
    for name, cfg, expected in cases:
        enc = create_encoder(name, cfg, 8)
        for step in (enc.check_weights, enc.build):
            with pytest.raises(MissingWeightsError) as e:
                step()
            _one_line(e.value, str(tmp_path), expected)

    # A Wan folder whose tokenizer is gone, and an X-CLIP folder without weights.
    (tmp_path / "text_encoder").mkdir()
    (tmp_path / "text_encoder" / "config.json").write_text("{}")
    (tmp_path / "text_encoder" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError) as e:
        create_encoder("umt5", dict(model_dir=str(tmp_path)), 8).check_weights()
    _one_line(e.value, str(tmp_path / "tokenizer"), "tokenizer/")
    with pytest.raises(MissingWeightsError) as e:
        create_encoder("xclip", _cfg_xclip(tmp_path / "text_encoder" / ".."), 8).check_weights()
    _one_line(e.value, "model.safetensors")


def _replace(path, write):
    """Write new contents to `path` the way a download tool does (temp file, then rename)."""
    tmp = path.with_name(path.name + ".new" + path.suffix)
    write(tmp)
    os.replace(tmp, path)


def test_changed_weights_change_identity(wdir):
    # open_clip file
    path = P.save_openclip(wdir / "id_clip.safetensors", seed=10)
    enc = create_encoder("openclip-image", _cfg_image(path, device="cpu"), P.EMBED)
    first = enc.identity()
    assert enc.identity() == first  # stable (and cached)
    json.dumps(first)  # the store writes it as JSON
    assert set(first) >= {"name", "architecture", "weights", "preprocessing", "dim"}
    assert "device" not in first["config"] and "batch_size" not in first["config"]
    _replace(path, lambda p: P.save_openclip(p, seed=11))
    assert enc.identity()["weights"]["sha256"] != first["weights"]["sha256"]

    # ViCLIP .pth
    vpath = P.save_viclip(wdir / "id_viclip.pth", seed=12)
    venc = create_encoder("viclip", _cfg_viclip(vpath), P.EMBED)
    before = venc.identity()["weights"]["sha256"]
    _replace(vpath, lambda p: P.save_viclip(p, seed=13))
    assert venc.identity()["weights"]["sha256"] != before

    # Wan folder: the UMT5 weights file inside text_encoder/
    folder = P.save_wan_text(wdir / "id_wan", seed=14)
    uenc = create_encoder("umt5", dict(model_dir=str(folder)), P.EMBED + 8)
    before = uenc.identity()
    assert "text_encoder/model.safetensors" in before["weights"]["files"]
    assert "tokenizer/tokenizer.json" in before["weights"]["files"]
    other = P.save_wan_text(wdir / "id_wan_other", seed=15)
    _replace(folder / "text_encoder" / "model.safetensors",
             lambda p: p.write_bytes((other / "text_encoder" / "model.safetensors").read_bytes()))
    assert uenc.identity()["weights"]["sha256"] != before["weights"]["sha256"]
    for e in (enc, venc, uenc):  # no absolute paths: moved weights keep their identity
        assert str(wdir) not in json.dumps(e.identity())


def test_toy_paper_preset_through_the_registry(wdir, clips, tmp_path):
    """A paper-shaped preset on toy weights: created, checked, built and run through the registry."""
    clip = P.save_openclip(wdir / "preset_clip.safetensors", seed=20)
    vic = P.save_viclip(wdir / "preset_viclip.pth", seed=21)
    wan = P.save_wan_text(wdir / "preset_wan", seed=22)
    preset = P.toy_paper_preset(clip, vic, wan)
    enc = preset["encoders"]
    (tmp_path / "toy_paper.json").write_text(json.dumps(preset))
    es = create_encoders(load_preset(str(tmp_path / "toy_paper.json")))
    es.check_weights()
    es.build()
    assert es.image.encode_frames(clips).shape == (2, P.FRAMES, P.EMBED)
    assert es.text.encode_text(P.CAPTIONS).shape == (3, P.EMBED)
    assert es.action.encode_video(clips).shape == (2, P.EMBED)
    assert es.cond.encode_empty().shape == (1, P.EMBED + 8)

    enc["action"]["dim"] = P.EMBED + 1  # a preset dim the model does not produce
    (tmp_path / "bad.json").write_text(json.dumps(preset))
    with pytest.raises(CNError) as e:
        create_encoders(load_preset(str(tmp_path / "bad.json"))).action.build()
    _one_line(e.value, "dim")


def test_real_paper_preset_validates():
    preset = load_preset("paper")
    es = create_encoders(preset)  # configs parse; no weights needed for that
    assert {m: e.name for m, e in es.items()} == {"image": "openclip-image", "text": "openclip-text", "action": "viclip", "cond": "umt5"}
    assert preset.dims() == {"image": 1024, "text": 1024, "action": 768, "cond": 4096}
    with pytest.raises(MissingWeightsError):
        es.check_weights()


def test_viclip_resizes_like_upstream_by_default_and_records_it(wdir, clips):
    import cv2

    from cineneuron.encoders.paper import _common as C

    path = P.save_viclip(wdir / "ViClip-resize.pth", seed=8)
    big = np.repeat(np.repeat(clips, 2, axis=2), 3, axis=3)  # (2, 8, 64, 96, 3): not square, not at size
    enc = create_encoder("viclip", _cfg_viclip(path), P.EMBED).build()
    assert enc.config.resize == "squash"
    # upstream: cv2.resize every frame to size x size, then normalise (viclip_upstream_pixels)
    squashed = np.stack([[cv2.resize(f, (P.SIZE, P.SIZE)) for f in clip] for clip in big])
    video = P.viclip_upstream_pixels(squashed)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(enc._model.encode_video(video), dim=-1).numpy()
    got = enc.encode_video(big)
    np.testing.assert_allclose(got, ref, atol=ATOL)
    ours = create_encoder("viclip", _cfg_viclip(path, resize="short_side_crop"), P.EMBED).build()
    other = ours.encode_video(big)
    assert np.abs(other - got).max() > 1e-3  # the two resizes give different vectors
    ida, idb = enc.identity()["preprocessing"]["resize"], ours.identity()["preprocessing"]["resize"]
    assert ida.startswith("cv2.resize") and "centre crop" in idb and enc.identity() != ours.identity()
    assert C.squash_resize(big[0], P.SIZE).shape == (8, P.SIZE, P.SIZE, 3)
