"""The paper path at its real size: full-width models on the meta device (no memory), stage-2 memory,
gradient checkpointing equal to no checkpointing, and the paper Brain Model preset."""

from __future__ import annotations

import pytest
import torch

from cineneuron.errors import CNError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
GB = 1e9


def _paper_estimate(grad_ckpt: bool, lora_fp32: bool = False, batch: int = 2):
    from cineneuron.decode.wan import wan_architecture
    from cineneuron.train.memory import _meta_counts, estimate_stage2
    import json

    arch = wan_architecture("wan2.1-t2v-1.3b")
    dit, vae = _meta_counts(json.dumps([arch["transformer"], arch["vae"]], sort_keys=True, default=list))
    return estimate_stage2(transformer=arch["transformer"], dit_params=dit, vae_params=vae, num_frames=57, height=624,
                           width=624, grad_ckpt=grad_ckpt, lora_fp32=lora_fp32, micro_batch=batch, batch_size=batch,
                           trained_params=1_232_315_159)


@pytest.mark.slow  # ~20 s on 2 shared cores: six meta-device block measurements
def test_stage2_estimate_at_paper_size_fits_80gb_only_with_checkpointing():
    on, off = _paper_estimate(True), _paper_estimate(False)
    assert on.video_tokens == 22_815 and on.text_tokens == 512
    # the arithmetic: one full-width block keeps ~2.45 GiB at 22,815 tokens, ~72 GiB per clip over 30
    assert 60 < off.activations_per_clip_gib < 85
    assert off.total_gib * 2**30 > 141 * GB  # out of memory even on an H200 at batch 2
    assert on.total_gib * 2**30 < 80 * GB
    assert on.activations_per_clip_gib < off.activations_per_clip_gib / 10
    # fp32 LoRA upcasts every LoRA input: more activation memory
    assert _paper_estimate(False, lora_fp32=True).activations_per_clip_gib > off.activations_per_clip_gib * 1.1


def _dit_2_layers():
    from diffusers import WanTransformer3DModel

    from cineneuron.decode.wan import wan_architecture
    from cineneuron.train.wan_lora import add_lora

    t = {**wan_architecture("wan2.1-t2v-1.3b")["transformer"], "num_layers": 2}
    torch.manual_seed(0)
    m = WanTransformer3DModel(**t)
    add_lora(m, r=4, alpha=4)
    with torch.no_grad():  # B starts at zero: make the LoRA path non-trivial so its A gets gradients too
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    return m


def _loss_grads_saved(m, ckpt: bool):
    from cineneuron.train.wan_lora import flow_matching_loss, lora_parameters, train_scheduler

    if ckpt:
        m.enable_gradient_checkpointing()
    else:
        m.disable_gradient_checkpointing()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 16, 2, 8, 8, generator=g)  # 2 latent frames x 4 x 4 = 32 tokens
    cond = torch.randn(1, 8, 4096, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    for p in lora_parameters(m):
        p.grad = None
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = flow_matching_loss(m, train_scheduler(), x0, cond, sigma=torch.tensor([0.4]),
                                  timestep=torch.tensor([400.0]), noise=noise)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in lora_parameters(m)], saved[0]


def test_gradient_checkpointing_gives_the_same_loss_and_lora_grads_with_less_saved():
    m = _dit_2_layers()
    l_off, g_off, s_off = _loss_grads_saved(m, ckpt=False)
    l_on, g_on, s_on = _loss_grads_saved(m, ckpt=True)
    assert abs(l_on - l_off) < 1e-5
    assert len(g_on) == len(g_off) == 2 * 8 * 2  # A and B of 8 projections in 2 blocks
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g_on, g_off))
    assert all(a.abs().sum() > 0 for a in g_on)
    assert s_on < s_off / 3  # the weights-free saved activations shrink: only the block inputs are kept


def test_paper_brain_preset_selects_the_transformer_and_refuses_the_mlp():
    from cineneuron.config import load_config

    assert load_config(None, {"brain.preset": "paper"}).brain.backbone == "transformer"
    with pytest.raises(CNError, match="transformer size"):
        load_config(None, {"brain.preset": "paper", "brain.backbone": "mlp"})


def test_device_and_precision_auto_resolve_and_reach_the_encoders(monkeypatch):
    import cineneuron.runtime as rt
    from cineneuron.config import load_config
    from cineneuron.encoders.registry import with_runtime

    cfg = load_config(None, {})
    assert cfg.encoders.device == "auto" and cfg.train.device == "auto"
    monkeypatch.setattr(rt, "cuda_available", lambda: False)
    assert rt.encoder_runtime(cfg.encoders) == {"device": "cpu", "precision": "fp32"}
    monkeypatch.setattr(rt, "cuda_available", lambda: True)
    r = rt.encoder_runtime(load_config(None, {"encoders.weights_dir": "/w"}).encoders)
    assert r == {"device": "cuda", "precision": "bf16", "weights_dir": "/w"}
    assert rt.train_runtime(load_config(None, {"train.precision": "fp32"}).train) == {"device": "cuda", "precision": "fp32"}
    # the runtime reaches a paper encoder's config, and the classic ones (no such fields) are left alone
    umt5 = with_runtime("umt5", {"model_dir": "x", "device": "cpu"}, r)
    assert umt5["device"] == "cuda" and umt5["precision"] == "bf16" and umt5["weights_dir"] == "/w"
    from cineneuron.encoders.registry import registered

    assert set(with_runtime("minilm", {}, r)) <= set(registered()["minilm"].Config.model_fields)
    monkeypatch.setattr(rt, "cuda_available", lambda: False)
    with pytest.raises(CNError, match="no CUDA GPU"):
        rt.resolve_device("cuda")


def test_runtime_fields_are_not_identity(tmp_path):
    from cineneuron.encoders.registry import create_encoder

    a = create_encoder("umt5", {"model_dir": "x", "device": "cpu", "precision": "fp32"}, 4096)
    b = create_encoder("umt5", {"model_dir": "x", "device": "cuda", "precision": "bf16", "weights_dir": "/w"}, 4096)
    from cineneuron.encoders.paper._common import RUNTIME_FIELDS

    drop = lambda e: {k: v for k, v in e.config.model_dump().items() if k not in RUNTIME_FIELDS}  # noqa: E731
    assert drop(a) == drop(b)


PAPER_COUNTS = {  # the table, built here at published size with random weights
    "OpenCLIP": 986_109_441, "ViCLIP": 427_590_145, "UMT5": 5_680_910_336, "Wan2.1 DiT": 1_418_996_800,
    "Wan2.1 VAE": 126_892_531, "Brain Model": 1_232_315_159,
}


@pytest.mark.slow  # ~40 s: imports open_clip, transformers and diffusers in a fresh process
def test_cn_doctor_full_size_reports_the_published_parameter_counts_with_no_weights(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "CN_WEIGHTS_DIR": str(tmp_path)}  # an empty folder: no weights at all
    r = subprocess.run([sys.executable, "-m", "cineneuron.cli", "doctor", "--preset", "paper", "--full-size", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert all(v is not None for v in rep["weights"].values())  # every weight is reported missing...
    got = {m["model"]: m["params"] for m in rep["models"]}
    for prefix, want in PAPER_COUNTS.items():  # ...and every model is still sized, within 0.2 %
        (name,) = [n for n in got if n.startswith(prefix)]
        assert abs(got[name] - want) <= 0.002 * want, (name, got[name], want)
    s = rep["stage2"]
    assert s["grad_ckpt"]["video_tokens"] == 22_815
    assert s["grad_ckpt"]["total_gib"] * 2**30 < 80e9 < s["no_ckpt"]["total_gib"] * 2**30
    # without --full-size and without weights, doctor says what is missing and exits 2
    r = subprocess.run([sys.executable, "-m", "cineneuron.cli", "doctor", "--preset", "paper", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 2 and "open_clip_vit_h14.safetensors" in json.loads(r.stdout)["weights"]["image"]


def test_stage2_refuses_in_one_line_when_the_estimate_exceeds_the_budget(monkeypatch, tmp_path):
    import cineneuron.train.memory as mem
    from cineneuron.config import load_config
    from cineneuron.decode.wan_decoder import wan_config

    monkeypatch.setattr(mem, "brain_params", lambda ckpt: 1_000_000)
    base = {"decode.wan_toy": True, "decode.num_frames": 9, "decode.height": 32, "decode.width": 32}
    lines = []
    cfg = load_config(None, {**base, "train.memory_budget_gb": 100.0})
    est = mem.check_fits(cfg, wan_config(cfg.decode, 12, device="cpu"), tmp_path, "cpu", echo=lines.append)
    assert lines == [est.line()] and "stage-2 memory estimate" in lines[0] and est.total_gib > 0
    cfg = load_config(None, {**base, "train.memory_budget_gb": 1e-4})
    with pytest.raises(CNError, match=r"stage 2 needs about .* GiB but cpu has"):
        mem.check_fits(cfg, wan_config(cfg.decode, 12, device="cpu"), tmp_path, "cpu", echo=lines.append)
