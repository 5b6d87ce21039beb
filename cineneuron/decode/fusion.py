"""Mixture-of-Memories fusion: inject retrieved memories into the fMRI embedding, then into T*.

    F  --xattn(image memories)+res--> --xattn(action memories)+res--> RMSNorm --> F'
    F' --resampler (queries from T*)--> (B, L_t, D_c) --Z_f (zero init)--> ·λ
    C = T* + Z_t(T*) + λ · Z_f(Norm(F'))

Z_f and Z_t start at zero, so at initialisation C == T* bit for bit and stage-2 training starts
from the generator's own text space. This module imports torch at module level: import it
lazily from anything the CLI loads.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn


class FusionConfig(BaseModel):
    """Widths of the four inputs and the fusion's own settings."""

    model_config = ConfigDict(extra="forbid")

    d_f: int  # width of the fMRI embedding F
    d_img: int  # width of one image memory
    d_act: int  # width of one action memory
    d_c: int  # width of the decoder's text conditioning T*
    heads: int = 4
    lam: float = 1.0  # λ, the weight of the fMRI branch
    resample: bool = True  # False only when F already has T*'s token count

    @model_validator(mode="after")
    def _heads_divide(self) -> "FusionConfig":
        for name in ("d_f", "d_c"):
            if getattr(self, name) % self.heads:
                raise ValueError(f"{name}={getattr(self, name)} is not divisible by heads={self.heads}")
        return self


class MemoryCrossAttention(nn.Module):
    """h + Attn(q=Norm(h), k=v=proj(memories)): one memory set injected with a residual."""

    def __init__(self, d_f: int, d_mem: int, heads: int):
        super().__init__()
        self.proj = nn.Linear(d_mem, d_f)  # memories live in their own space; bring them to D_f
        self.norm = nn.RMSNorm(d_f)
        self.attn = nn.MultiheadAttention(d_f, heads, batch_first=True)

    def forward(self, h: torch.Tensor, mem: torch.Tensor, mem_mask: torch.Tensor | None = None) -> torch.Tensor:
        kv = self.proj(mem)  # (B, k, D_f)
        pad = None if mem_mask is None else ~mem_mask.bool()  # MHA masks True = ignore
        out = self.attn(self.norm(h), kv, kv, key_padding_mask=pad, need_weights=False)[0]  # (B, L_f, D_f)
        return h + out


class Resampler(nn.Module):
    """Cross-attention with queries from T*: brings F' from (B, L_f, D_f) to (B, L_t, D_c)."""

    def __init__(self, d_c: int, d_f: int, heads: int):
        super().__init__()
        self.q_norm = nn.RMSNorm(d_c)  # T* scale differs per encoder; keep the logits sane
        self.attn = nn.MultiheadAttention(d_c, heads, kdim=d_f, vdim=d_f, batch_first=True)

    def forward(self, t_star: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.attn(self.q_norm(t_star), h, h, need_weights=False)[0]  # (B, L_t, D_c)


def _zero_linear(d_in: int, d_out: int) -> nn.Linear:
    lin = nn.Linear(d_in, d_out)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class MoMFusion(nn.Module):
    """C = T* + Z_t(T*) + λ·Z_f(Resample(Norm(F'))); padded T* positions pass through unchanged."""

    def __init__(self, cfg: FusionConfig):
        super().__init__()
        self.cfg = cfg
        self.lam = cfg.lam
        self.xattn_img = MemoryCrossAttention(cfg.d_f, cfg.d_img, cfg.heads)
        self.xattn_act = MemoryCrossAttention(cfg.d_f, cfg.d_act, cfg.heads)
        self.norm = nn.RMSNorm(cfg.d_f)
        self.resampler = Resampler(cfg.d_c, cfg.d_f, cfg.heads) if cfg.resample else None
        self.z_f = _zero_linear(cfg.d_c if cfg.resample else cfg.d_f, cfg.d_c)
        self.z_t = _zero_linear(cfg.d_c, cfg.d_c)

    def integrate(
        self,
        fmri: torch.Tensor,
        img: torch.Tensor,
        act: torch.Tensor,
        mem_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """F' = Norm(F + image xattn + action xattn): (B, L_f, D_f)."""
        h = self.xattn_img(fmri, img, mem_mask)  # (B, L_f, D_f)
        h = self.xattn_act(h, act, mem_mask)  # (B, L_f, D_f)
        return self.norm(h)

    def forward(
        self,
        fmri: torch.Tensor,
        img: torch.Tensor,
        act: torch.Tensor,
        t_star: torch.Tensor,
        t_mask: torch.Tensor | None = None,
        mem_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """fmri (B, L_f, D_f), img (B, k, d_img), act (B, k, d_act), t_star (B, L_t, D_c).

        t_mask (B, L_t) is True on real tokens of T* (see `pad_tokens`); mem_mask (B, k) is True
        on valid memories. Returns C with T*'s shape and dtype.
        """
        self._check_shapes(fmri, img, act, t_star)
        h = self.integrate(fmri, img, act, mem_mask)  # (B, L_f, D_f)
        t_in = t_star.to(self.z_t.weight.dtype)
        if self.resampler is not None:
            h = self.resampler(t_in, h)  # (B, L_t, D_c)
        delta = self.z_t(t_in) + self.lam * self.z_f(h)  # (B, L_t, D_c)
        if t_mask is not None:
            # where() rather than a product: padding stays exactly T* (zeros) even if delta is not finite
            delta = torch.where(t_mask.bool()[..., None], delta, torch.zeros_like(delta))
        return t_star + delta.to(t_star.dtype)

    def _check_shapes(self, fmri, img, act, t_star) -> None:
        c = self.cfg
        want = {"fmri": (fmri, c.d_f), "img": (img, c.d_img), "act": (act, c.d_act), "t_star": (t_star, c.d_c)}
        for name, (x, d) in want.items():
            if x.ndim != 3 or x.shape[-1] != d:
                raise ValueError(f"{name} must be (B, L, {d}); got {tuple(x.shape)}")
        if len({fmri.shape[0], img.shape[0], act.shape[0], t_star.shape[0]}) != 1:
            raise ValueError("fmri, img, act and t_star must share the batch size")
        if self.resampler is None and fmri.shape[1] != t_star.shape[1]:
            raise ValueError(
                f"F has {fmri.shape[1]} tokens and T* has {t_star.shape[1]}: build the fusion with resample=True"
            )


def pad_tokens(
    seqs: Sequence[torch.Tensor | np.ndarray], length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-clip conditionings of unequal length (L_i, D) with zeros after the real tokens.

    This is the padding the Wan text-encoder path uses. Returns T* (B, L, D) float32 and a mask
    (B, L), True on real tokens. `length` defaults to the longest sequence.
    """
    ts = [torch.as_tensor(np.asarray(s) if not isinstance(s, torch.Tensor) else s).float() for s in seqs]
    if not ts or any(t.ndim != 2 for t in ts) or len({t.shape[1] for t in ts}) != 1:
        raise ValueError("pad_tokens needs a non-empty list of (L_i, D) arrays with one D")
    longest = max(t.shape[0] for t in ts)
    length = longest if length is None else length
    if longest > length:
        raise ValueError(f"a conditioning has {longest} tokens, more than length={length}")
    out = ts[0].new_zeros(len(ts), length, ts[0].shape[1])  # (B, L, D)
    mask = torch.zeros(len(ts), length, dtype=torch.bool)  # (B, L)
    for i, t in enumerate(ts):
        out[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return out, mask
