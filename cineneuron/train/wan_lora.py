"""Stage-2 training pieces on the Wan2.1 generator: LoRA, cached latents, flow-matching loss.

The step follows the public Wan fine-tuning code (diffusers' flow-matching LoRA scripts):
logit-normal u, idx = (u*1000).long(), t = timesteps[idx], σ = sigmas[idx],
x_t = (1−σ)·x0 + σ·ε, the transformer predicts ε − x0, mean squared error.
LoRA files are safetensors (with the adapter config in the header) plus a JSON sidecar; never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cineneuron.atomic import atomic_write_text
from cineneuron.decode.lora import LORA_SIDECAR, LORA_WEIGHTS, load_lora  # noqa: F401  (the saved layout)

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # self- and cross-attention of every block


def freeze(*modules: nn.Module) -> None:
    """No gradients for the base weights (DiT, VAE)."""
    for m in modules:
        m.requires_grad_(False)


def add_lora(transformer: nn.Module, r: int = 16, alpha: float = 16, dropout: float = 0.0) -> nn.Module:
    """Freeze the DiT and add a LoRA adapter (B starts at zero, so outputs are unchanged)."""
    from peft import LoraConfig

    freeze(transformer)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, init_lora_weights=True, target_modules=LORA_TARGETS)
    transformer.add_adapter(cfg)
    return transformer


def lora_parameters(transformer: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in transformer.named_parameters() if "lora_" in n]


def stage2_parameters(transformer: nn.Module, *modules: nn.Module) -> list[nn.Parameter]:
    """LoRA params of the DiT + every param of the given modules (fusion, backbone, router...).

    Refuses a DiT whose base weights still require gradients: call `add_lora` first.
    """
    base = [n for n, p in transformer.named_parameters() if p.requires_grad and "lora_" not in n]
    if base:
        raise ValueError(f"base DiT weights require grad ({base[0]}, ...): call add_lora() first")
    params = lora_parameters(transformer)
    if not params:
        raise ValueError("the transformer has no LoRA adapter: call add_lora() first")
    seen = {id(p) for p in params}
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def train_scheduler(shift: float | None = None, source=None):
    """A full 1000-step flow-matching table for training (the inference scheduler gets reset by set_timesteps).

    The shift comes from `shift`, else from `source` (a scheduler: `shift` or UniPC's `flow_shift`), else 3.0.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    if shift is None and source is not None:
        conf = source.config
        shift = conf.get("shift", conf.get("flow_shift"))
    n = 1000 if source is None else int(source.config.get("num_train_timesteps", 1000))
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=n, shift=3.0 if shift is None else float(shift))


def _vae_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=like.dtype).view(1, z, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=like.dtype).view(1, z, 1, 1, 1)
    return mean, std


@torch.no_grad()
def encode_latents(
    vae, video: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True
) -> np.ndarray:
    """video (B, 3, F, H, W) in [-1, 1] -> normalised latents (B, z, (F−1)/4+1, H/8, W/8) float16 numpy.

    Normalised as (z − latents_mean) / latents_std from the VAE config; cache these and feed
    `torch.from_numpy(x).float()` to `flow_matching_loss`.
    """
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, F, H, W), got {tuple(video.shape)}")
    dist = vae.encode(video.to(vae.device, vae.dtype)).latent_dist
    z = dist.sample(generator) if sample else dist.mode()  # (B, z, F', H/8, W/8)
    mean, std = _vae_stats(vae, z)
    return ((z - mean) / std).float().cpu().numpy().astype(np.float16)


def sample_timesteps(
    scheduler, batch: int, generator: torch.Generator | None = None, logit_mean: float = 0.0, logit_std: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logit-normal training timesteps: (t (B,), σ (B,)) from the scheduler's 1000-entry tables."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    n = scheduler.config.num_train_timesteps
    if len(scheduler.timesteps) != n or len(scheduler.sigmas) < n:
        raise ValueError("the scheduler was set for inference; use train_scheduler() for training")
    dev = generator.device if generator is not None else torch.device("cpu")
    u = compute_density_for_timestep_sampling(
        "logit_normal", batch, logit_mean=logit_mean, logit_std=logit_std, device=dev, generator=generator
    )  # (B,) in (0, 1)
    idx = (u.cpu() * n).long().clamp_(0, n - 1)  # (B,)
    return scheduler.timesteps[idx], scheduler.sigmas[idx]


def flow_matching_loss(
    transformer: nn.Module,
    scheduler,
    latents: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    sigma: torch.Tensor | None = None,
    timestep: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
) -> torch.Tensor:
    """MSE between the DiT's velocity and ε − x0 at a logit-normal timestep.

    latents (B, z, F', h, w) normalised (see `encode_latents`); cond (B, L, text_dim), zero-padded
    as the generator expects (`wan.pad_text`). σ and t (both (B,)) and ε (latents' shape) may be
    given to fix the draw; otherwise they come from `generator`.
    """
    if (sigma is None) != (timestep is None):
        raise ValueError("give both sigma and timestep, or neither")
    x0 = latents.float()
    if sigma is None:
        timestep, sigma = sample_timesteps(scheduler, x0.shape[0], generator, logit_mean, logit_std)
    if noise is None:
        dev = generator.device if generator is not None else x0.device
        noise = torch.randn(x0.shape, generator=generator, device=dev)
    noise = noise.to(x0.device, torch.float32)
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x0.device).view(-1, 1, 1, 1, 1)  # (B, 1, 1, 1, 1)
    x_t = (1.0 - s) * x0 + s * noise  # (B, z, F', h, w)
    dtype = transformer.dtype
    pred = transformer(
        hidden_states=x_t.to(dtype),
        timestep=torch.as_tensor(timestep, device=x0.device),
        encoder_hidden_states=cond.to(x0.device, dtype),
        return_dict=False,
    )[0]
    return F.mse_loss(pred.float(), noise - x0)


def _json_ready(d: dict) -> dict:
    return {k: sorted(v) if isinstance(v, set) else v for k, v in d.items() if k not in ("peft_type", "task_type")}


def save_lora(directory: str | Path, transformer: nn.Module, adapter_name: str = "default") -> Path:
    """LoRA weights + adapter config (so alpha ≠ r reloads exactly) as safetensors, plus a JSON sidecar."""
    from diffusers import WanPipeline
    from peft.utils import get_peft_model_state_dict

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = transformer.peft_config[adapter_name].to_dict()
    WanPipeline.save_lora_weights(
        directory,
        transformer_lora_layers=get_peft_model_state_dict(transformer, adapter_name=adapter_name),
        transformer_lora_adapter_metadata=meta,
        safe_serialization=True,
    )
    atomic_write_text(directory / LORA_SIDECAR, json.dumps(_json_ready(meta), indent=1, default=str))
    return directory / LORA_WEIGHTS
