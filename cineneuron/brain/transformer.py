"""Transformer backbone of the Brain Model.

    voxels (B, n_tr, V) --transpose--> (B, V, n_tr)
      -> zero-pad V to P*p, group consecutive voxels -> (B, P, p*n_tr)   P patches of p voxels,
                                                                         each with all its TRs
      -> per-subject linear patch embedding            -> (B, P, D)
      -> prepend one learned global token, add learned positions -> (B, 1+P, D)
      -> n_layers x pre-norm block (attention, MLP)
      -> LayerNorm; g = token 0 -> (B, D); F = Linear(D, D_f)(tokens 1..P) -> (B, P, D_f)

A patch holds a run of voxels with all their TRs (not a run of one TR's values) so that each
token sees the time course of its voxels. Patch size p = ceil(V / P) is per subject; the padded
voxels are zeros. The paper's size is the `paper` preset (24 layers x 2048 hidden x 513 tokens,
~1.2 B parameters): GPU only, never built in tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cineneuron.brain.mlp import subject_key, subject_modules
from cineneuron.errors import CNError
from cineneuron.schemas.models import load_model_config, model_configs


@dataclass
class TransformerConfig:
    n_layers: int = 4
    hidden: int = 256  # D: width of every token and of g
    n_heads: int = 4
    n_patches: int = 32  # P: fMRI tokens; the sequence is P + 1 with the global token
    token_dim: int = 256  # D_f: width of each token of F
    mlp_ratio: float = 4.0

    @classmethod
    def preset(cls, name: str) -> TransformerConfig:
        """A size kept as data: `schemas/presets/models/brain-<name>.json` (toy, small, paper)."""
        if name not in TRANSFORMER_PRESETS:
            raise CNError(f"unknown transformer preset {name!r}; choose one of {', '.join(TRANSFORMER_PRESETS)}")
        return cls(**TRANSFORMER_PRESETS[name])


# Sizes from `schemas/presets/models/brain-*.json`; the paper: 24 layers x 2048 hidden x 513 tokens.
TRANSFORMER_PRESETS = {n[len("brain-"):]: load_model_config(n, "brain-transformer")["transformer"]
                       for n in model_configs() if n.startswith("brain-")}


class PatchEmbed(nn.Module):
    """One subject's voxels -> P patch tokens."""

    def __init__(self, n_tr: int, n_voxels: int, n_patches: int, hidden: int):
        super().__init__()
        self.n_patches = n_patches
        self.patch = math.ceil(n_voxels / n_patches)  # p voxels per patch
        self.pad = self.patch * n_patches - n_voxels
        self.proj = nn.Linear(self.patch * n_tr, hidden)

    def forward(self, voxels: torch.Tensor) -> torch.Tensor:
        B = voxels.shape[0]  # voxels (B, n_tr, V)
        x = voxels.transpose(1, 2)  # (B, V, n_tr)
        x = nn.functional.pad(x, (0, 0, 0, self.pad))  # (B, P*p, n_tr)
        x = x.reshape(B, self.n_patches, -1)  # (B, P, p*n_tr)
        return self.proj(x)  # (B, P, D)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, n_heads: int, dropout: float):
        super().__init__()
        if hidden % n_heads:
            raise CNError(f"transformer hidden size {hidden} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = dropout
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape  # x (B, N, D)
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 x (B, N, D)
        q, k, v = (t.view(B, N, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, N, D/H)
        p = self.dropout if self.training else 0.0
        y = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, N, D/H)
        y = y.transpose(1, 2).reshape(B, N, D)  # (B, N, D)
        return self.drop(self.out(y))  # (B, N, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, cfg: TransformerConfig, dropout: float):
        super().__init__()
        inner = int(cfg.hidden * cfg.mlp_ratio)
        self.ln1 = nn.LayerNorm(cfg.hidden)
        self.attn = SelfAttention(cfg.hidden, cfg.n_heads, dropout)
        self.ln2 = nn.LayerNorm(cfg.hidden)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.hidden, inner), nn.GELU(), nn.Linear(inner, cfg.hidden), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, N, D)
        x = x + self.attn(self.ln1(x))  # (B, N, D)
        return x + self.mlp(self.ln2(x))  # (B, N, D)


class TransformerBackbone(nn.Module):
    def __init__(self, cfg: TransformerConfig, subjects: dict, dropout: float = 0.1):
        """subjects: id -> object with n_tr and n_voxels (SubjectSpec)."""
        super().__init__()
        self.cfg = cfg
        self.g_dim = cfg.hidden
        self.f_dim = cfg.token_dim
        self.n_tokens = cfg.n_patches
        self.subject_in = subject_modules(subjects, lambda n_tr, v: PatchEmbed(n_tr, v, cfg.n_patches, cfg.hidden))
        self.global_token = nn.Parameter(torch.zeros(1, 1, cfg.hidden))  # (1, 1, D)
        self.pos = nn.Parameter(torch.zeros(1, cfg.n_patches + 1, cfg.hidden))  # (1, 1+P, D)
        nn.init.normal_(self.global_token, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(cfg, dropout) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.to_tokens = nn.Linear(cfg.hidden, cfg.token_dim)

    def forward(self, voxels: torch.Tensor, subject: str) -> tuple[torch.Tensor, torch.Tensor]:
        B = voxels.shape[0]  # voxels (B, n_tr, V)
        patches = self.subject_in[subject_key(subject)](voxels)  # (B, P, D)
        x = torch.cat([self.global_token.expand(B, -1, -1), patches], dim=1)  # (B, 1+P, D)
        x = self.drop(x + self.pos)  # (B, 1+P, D)
        for block in self.blocks:
            x = block(x)  # (B, 1+P, D)
        x = self.ln_f(x)  # (B, 1+P, D)
        g = x[:, 0]  # (B, D)
        F = self.to_tokens(x[:, 1:])  # (B, P, D_f)
        return g, F
