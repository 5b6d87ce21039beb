"""Memory of Wan stage 2, estimated before anything loads (and measured the same way in tests).

Activations: one full-width DiT block (the real diffusers module, LoRA added by our own
`wan_lora.add_lora`) runs forward on the **meta device** at two small token counts under
`torch.autograd.graph.saved_tensors_hooks`; the bytes it saves for backward that grow with the
video tokens N give bytes per token per block. Attention weights (N x N, N x L) are left out:
on a GPU, SDPA's flash / memory-efficient kernels keep only their inputs, output and log-sum-exp.
With gradient checkpointing a block keeps only its inputs, and one block's activations exist
again while it is recomputed. Nothing is allocated; the measurement takes a fraction of a second.

Weights and optimiser state are counted from parameter numbers (AdamW: two fp32 moments, plus
the fp32 gradient of each trained parameter).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from functools import lru_cache

GiB = 2**30


def video_tokens(num_frames: int, height: int, width: int, patch=(1, 2, 2), vae_t: int = 4, vae_s: int = 8) -> int:
    """DiT tokens of one clip: latent frames (F-1)/4+1, latent side /8, patch (1, 2, 2)."""
    f = (num_frames - 1) // vae_t + 1
    return (f // patch[0]) * (height // vae_s // patch[1]) * (width // vae_s // patch[2])


def _block_saved_bytes(arch: dict, n_side: int, text_len: int, dtype_name: str, lora_r: int | None,
                       lora_fp32: bool, ckpt: bool) -> int:
    """Bytes saved for backward by a 1-block DiT on the meta device, counting tensors that scale with N."""
    import torch
    from diffusers import WanTransformer3DModel

    from cineneuron.decode.wan import cast_transformer
    from cineneuron.runtime import torch_dtype

    dtype = torch_dtype(dtype_name)
    with torch.device("meta"):
        m = WanTransformer3DModel(**{**arch, "num_layers": 1})
    cast_transformer(m, dtype)
    if lora_r:
        from cineneuron.train.wan_lora import add_lora, lora_parameters

        add_lora(m, r=lora_r, alpha=lora_r)
        for p in lora_parameters(m):
            p.data = p.data.float() if lora_fp32 else p.data.to(dtype)
    else:  # something must learn for autograd to save anything
        m.requires_grad_(False)
        m.blocks[0].attn1.to_q.weight.requires_grad_(True)
    if ckpt:
        m.enable_gradient_checkpointing()
    lat_f, side = 1, n_side * 2  # latent frames x (side/2)^2 tokens
    n = lat_f * n_side * n_side
    total = [0]

    def pack(t):
        dims = set(t.shape)
        if n in dims and not (t.ndim >= 2 and t.shape[-1] in (n, text_len) and t.shape[-2] in (n, text_len)):
            total[0] += t.numel() * t.element_size()
        return t

    x = torch.zeros(1, arch["in_channels"], lat_f, side, side, device="meta", dtype=dtype)
    c = torch.zeros(1, text_len, arch["text_dim"], device="meta", dtype=dtype)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(hidden_states=x, timestep=torch.zeros(1, device="meta"), encoder_hidden_states=c, return_dict=False)
    return total[0]


def block_bytes_per_token(transformer: dict, dtype: str = "bf16", lora_r: int | None = 16, lora_fp32: bool = False,
                          ckpt: bool = False, text_len: int = 512) -> float:
    """Bytes one DiT block keeps per video token for backward (linear fit over two token counts)."""
    key = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in transformer.items()}, sort_keys=True)
    return _per_token(key, dtype, lora_r, lora_fp32, ckpt, text_len)


@lru_cache(maxsize=64)
def _per_token(key: str, dtype: str, lora_r, lora_fp32: bool, ckpt: bool, text_len: int) -> float:
    arch = {k: tuple(v) if k == "patch_size" else v for k, v in json.loads(key).items()}
    a, b = 8, 16
    ya = _block_saved_bytes(arch, a, text_len, dtype, lora_r, lora_fp32, ckpt)
    yb = _block_saved_bytes(arch, b, text_len, dtype, lora_r, lora_fp32, ckpt)
    return (yb - ya) / (b * b - a * a)


@dataclass
class Stage2Estimate:
    video_tokens: int
    text_tokens: int
    layers: int
    grad_ckpt: bool
    lora_fp32: bool
    micro_batch: int
    batch_size: int
    activations_per_clip_gib: float  # what backward keeps for one clip, all blocks
    activations_gib: float  # at the micro-batch, plus one block's recompute with checkpointing
    dit_weights_gib: float
    vae_weights_gib: float
    trained_state_gib: float  # Brain Model + router + fusion + LoRA: fp32 weights, grads, AdamW moments
    total_gib: float

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        ck = "on" if self.grad_ckpt else "off"
        return (f"stage-2 memory estimate: {self.video_tokens:,} video + {self.text_tokens} text tokens per clip, "
                f"activations {self.activations_per_clip_gib:.1f} GiB per clip (checkpointing {ck}) x micro-batch "
                f"{self.micro_batch} = {self.activations_gib:.1f} GiB, DiT {self.dit_weights_gib:.1f} GiB, VAE "
                f"{self.vae_weights_gib:.1f} GiB, trained state (weights, grads, AdamW) {self.trained_state_gib:.1f} GiB: "
                f"about {self.total_gib:.1f} GiB")


def estimate_stage2(*, transformer: dict, dit_params: int, vae_params: int, num_frames: int, height: int, width: int,
                    dtype: str = "bf16", grad_ckpt: bool = True, lora_fp32: bool = False, lora_r: int = 16,
                    micro_batch: int | None = 1, batch_size: int = 1, trained_params: int = 0,
                    text_len: int = 512) -> Stage2Estimate:
    """The whole stage-2 step's memory, from sizes alone (meta device; nothing loaded)."""
    t, layers = transformer, int(transformer["num_layers"])
    n = video_tokens(num_frames, height, width, tuple(t["patch_size"]))
    full = block_bytes_per_token(t, dtype, lora_r, lora_fp32, False, text_len) * n  # one block, no ckpt
    kept = block_bytes_per_token(t, dtype, lora_r, lora_fp32, True, text_len) * n if grad_ckpt else full
    per_clip = kept * layers
    mb = max(1, min(micro_batch or batch_size, batch_size))
    acts = per_clip * mb + (full * mb if grad_ckpt else 0.0)
    bpe = 4 if dtype == "fp32" else 2
    lora_p = _lora_params(t, lora_r)
    # trained fp32 parameters: weight + grad + two AdamW moments = 16 bytes; a bf16 LoRA: 2 + 2 + 8
    trained = trained_params * 16 + lora_p * (16 if lora_fp32 or dtype == "fp32" else 12)
    total = acts + dit_params * bpe + vae_params * 4 + trained
    return Stage2Estimate(
        video_tokens=n, text_tokens=text_len, layers=layers, grad_ckpt=grad_ckpt, lora_fp32=lora_fp32,
        micro_batch=mb, batch_size=batch_size, activations_per_clip_gib=per_clip / GiB, activations_gib=acts / GiB,
        dit_weights_gib=dit_params * bpe / GiB, vae_weights_gib=vae_params * 4 / GiB, trained_state_gib=trained / GiB,
        total_gib=total / GiB)


def wan_sizes(wcfg) -> tuple[dict, int, int]:
    """(transformer kwargs, DiT parameters, VAE parameters) of a decoder config, built on the meta device."""
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from cineneuron.decode.wan import wan_architecture

    if wcfg.model_dir is not None:
        read = lambda sub: {k: v for k, v in json.loads((Path(wcfg.model_dir) / sub / "config.json").read_text()).items()
                            if not k.startswith("_")}  # noqa: E731
        t, v = read("transformer"), read("vae")
    else:
        arch = wan_architecture(wcfg.random_init or "wan-toy", wcfg.toy_text_dim)
        t, v = arch["transformer"], arch["vae"]
    key = json.dumps([t, v], sort_keys=True, default=list)
    return t, *_meta_counts(key)


@lru_cache(maxsize=8)
def _meta_counts(key: str) -> tuple[int, int]:
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    t, v = json.loads(key)
    t = {k: tuple(x) if k == "patch_size" else x for k, x in t.items()}
    with torch.device("meta"):
        dit, vae = WanTransformer3DModel(**t), AutoencoderKLWan(**v)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return count(dit), count(vae)


def brain_params(checkpoint: Path) -> int:
    """Parameters of the Brain Model (and router) a stage-2 run starts from, built on the meta device."""
    import torch

    from cineneuron.brain.model import BrainModel, BrainModelConfig

    meta = json.loads((Path(checkpoint) / "config.json").read_text())
    cfg = BrainModelConfig.model_validate(meta["model_config"])
    with torch.device("meta"):
        return sum(p.numel() for p in BrainModel(cfg).parameters())


def budget_bytes(device: str, budget_gb: float | None) -> int:
    from cineneuron.runtime import device_memory_bytes

    return int(budget_gb * 1e9) if budget_gb else device_memory_bytes(device)


def check_fits(cfg, wcfg, checkpoint: Path, device: str, echo=None) -> Stage2Estimate:
    """Estimate stage 2 before any model loads, print it, and refuse in one line when it cannot fit."""
    import sys

    from cineneuron.errors import CNError

    t, dit_p, vae_p = wan_sizes(wcfg)
    tr = cfg.train
    est = estimate_stage2(
        transformer=t, dit_params=dit_p, vae_params=vae_p, num_frames=wcfg.num_frames, height=wcfg.height,
        width=wcfg.width, dtype=wcfg.dtype, grad_ckpt=tr.grad_ckpt, lora_fp32=tr.lora_fp32,
        lora_r=cfg.decode.wan_lora_rank, micro_batch=tr.micro_batch, batch_size=tr.batch_size,
        trained_params=brain_params(checkpoint), text_len=wcfg.text_len)
    (echo or (lambda m: print(m, file=sys.stderr)))(est.line())
    limit = budget_bytes(device, tr.memory_budget_gb)
    if tr.memory_check and est.total_gib * GiB > limit:
        hint = "set train.grad_ckpt=true" if not tr.grad_ckpt else "lower train.micro_batch (e.g. 1)"
        raise CNError(f"stage 2 needs about {est.total_gib:.1f} GiB but {device} has {limit / GiB:.1f} GiB: {hint}, "
                      f"or lower decode.num_frames/height/width (train.memory_check=false to try anyway)")
    return est


def _lora_params(t: dict, r: int) -> int:
    """LoRA on to_q, to_k, to_v, to_out.0 of both attentions of every block: r x (in + out) each."""
    d = int(t["num_attention_heads"]) * int(t["attention_head_dim"])
    return int(t["num_layers"]) * 8 * r * (d + d)
