"""MLP backbone of the Brain Model (MindEye2 / NeuroClips style).

    voxels (B, n_tr, V) --flatten--> (B, n_tr*V)
      -> per-subject linear "ridge" layer -> (B, D)      one nn.Linear per subject
      -> LayerNorm, GELU, Dropout
      -> n_blocks x residual MLP block                   shared by every subject
      -> LayerNorm                                       -> g (B, D), the global token
      -> Linear(D, L*D_f), reshape                       -> F (B, L, D_f), the fMRI embedding

Only the input layer knows about a subject's voxel count, so several subjects can train one
shared backbone, as in MindEye2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cineneuron.errors import CNError


@dataclass
class MLPConfig:
    hidden: int = 1024  # D: width of the residual stream and of g
    n_blocks: int = 4  # residual MLP blocks after the subject layer
    mlp_ratio: float = 1.0  # block inner width = hidden * mlp_ratio
    n_tokens: int = 16  # L: tokens of the fMRI embedding F
    token_dim: int = 256  # D_f: width of each token of F


def subject_key(subject: str) -> str:
    """nn.ModuleDict key of a subject id (state-dict keys may not contain '.')."""
    if not subject:
        raise CNError("subject id is empty; give each subject a non-empty id")
    return subject.replace(".", "_dot_")


def subject_modules(subjects: dict, make) -> nn.ModuleDict:
    """One module per subject, built by make(n_tr, n_voxels); refuses ids that collide as keys."""
    keys = {}
    for sid in subjects:
        key = subject_key(sid)
        if key in keys:
            raise CNError(f"subject ids {keys[key]!r} and {sid!r} collide; rename one of them")
        keys[key] = sid
    return nn.ModuleDict({subject_key(s): make(spec.n_tr, spec.n_voxels) for s, spec in subjects.items()})


class MLPBlock(nn.Module):
    """Pre-norm residual block: x + Dropout(W2 GELU(W1 LN(x)))."""

    def __init__(self, hidden: int, mlp_ratio: float, dropout: float):
        super().__init__()
        inner = max(1, int(hidden * mlp_ratio))
        self.ln = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, inner)
        self.fc2 = nn.Linear(inner, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, D)
        h = nn.functional.gelu(self.fc1(self.ln(x)))  # (B, inner)
        return x + self.drop(self.fc2(h))  # (B, D)


class MLPBackbone(nn.Module):
    def __init__(self, cfg: MLPConfig, subjects: dict, dropout: float = 0.1):
        """subjects: id -> object with n_tr and n_voxels (SubjectSpec)."""
        super().__init__()
        self.cfg = cfg
        self.g_dim = cfg.hidden
        self.f_dim = cfg.token_dim
        self.n_tokens = cfg.n_tokens
        self.subject_in = subject_modules(subjects, lambda n_tr, v: nn.Linear(n_tr * v, cfg.hidden))
        self.ln_in = nn.LayerNorm(cfg.hidden)
        self.drop_in = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(MLPBlock(cfg.hidden, cfg.mlp_ratio, dropout) for _ in range(cfg.n_blocks))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.to_tokens = nn.Linear(cfg.hidden, cfg.n_tokens * cfg.token_dim)

    def forward(self, voxels: torch.Tensor, subject: str) -> tuple[torch.Tensor, torch.Tensor]:
        B = voxels.shape[0]  # voxels (B, n_tr, V)
        x = self.subject_in[subject_key(subject)](voxels.reshape(B, -1))  # (B, D)
        x = self.drop_in(nn.functional.gelu(self.ln_in(x)))  # (B, D)
        for block in self.blocks:
            x = block(x)  # (B, D)
        g = self.ln_f(x)  # (B, D)
        F = self.to_tokens(g).view(B, self.n_tokens, self.f_dim)  # (B, L, D_f)
        return g, F
