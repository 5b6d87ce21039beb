"""Heads of the Brain Model: everything stage 1 predicts from the global token g.

- `h_img(g)`  -> (B, d_img): predicts the clip's *pooled* image embedding.
- `h_txt(g)`  -> (B, d_txt): predicts the caption's text embedding.
- `h_act(g)`  -> (B, d_act): predicts the clip's action (video-text) embedding.
- `h_cls(g)`  -> (B, 15):    superclass logits.

Multi-frame image target. The target of a clip is T per-frame image embeddings (B, T, d_img).
`FramePool` turns them into one vector with learned softmax attention weights over the frame
positions:

    a = softmax(w)                  w: (T,) learned, zero at init -> a plain mean at first
    pooled = sum_t a_t * unit(frame_t)          (B, d_img)

and `h_img(g)` is trained (InfoNCE) to predict `pooled`. The weights get their gradient through
the InfoNCE loss, so training learns which moments of the clip the brain response tracks best
(e.g. the later frames, given the haemodynamic lag). The pooled target is a convex combination
of unit frame embeddings, so it stays inside the image encoder's space: a prediction can still be
compared, by cosine, with image embeddings that were pooled at ingest without this head (the
store's `img` column, the MoM memories), which would not hold for an unconstrained linear
projection of the targets (that could also drift towards targets that are easy but meaningless).
Frames are L2-normalised before pooling so that no frame dominates by its norm.
"""

from __future__ import annotations

import torch
from torch import nn

N_CLASSES = 15


class FramePool(nn.Module):
    """Learned softmax attention over T frame positions, applied to the target frames."""

    def __init__(self, n_frames: int):
        super().__init__()
        self.n_frames = n_frames
        self.logits = nn.Parameter(torch.zeros(n_frames))  # (T,) zero -> uniform weights

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=0)  # (T,)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[1] != self.n_frames:
            raise ValueError(f"expected {self.n_frames} frames per clip, got {frames.shape[1]} (shape {tuple(frames.shape)})")
        unit = nn.functional.normalize(frames.float(), dim=-1)  # (B, T, d_img)
        return torch.einsum("t,btd->bd", self.weights(), unit)  # (B, d_img)


class ProjectionHead(nn.Module):
    """LayerNorm -> Linear -> GELU -> Linear: maps g into one target space."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, g: torch.Tensor) -> torch.Tensor:  # g (B, D)
        return self.net(g)  # (B, out_dim)


class Heads(nn.Module):
    """All stage-1 heads. Dims come from the encoder preset (see model.TargetDims)."""

    def __init__(self, g_dim: int, d_img: int, d_txt: int, d_act: int, n_frames: int, hidden: int | None = None):
        super().__init__()
        h = hidden or g_dim
        self.frame_pool = FramePool(n_frames)
        self.img = ProjectionHead(g_dim, d_img, h)
        self.txt = ProjectionHead(g_dim, d_txt, h)
        self.act = ProjectionHead(g_dim, d_act, h)
        self.cls = nn.Sequential(nn.LayerNorm(g_dim), nn.Linear(g_dim, N_CLASSES))

    def forward(self, g: torch.Tensor) -> dict[str, torch.Tensor]:  # g (B, D)
        return {
            "img": self.img(g),  # (B, d_img)
            "txt": self.txt(g),  # (B, d_txt)
            "act": self.act(g),  # (B, d_act)
            "cls_logits": self.cls(g),  # (B, 15)
        }

    def pool_image_targets(self, img_frames: torch.Tensor) -> torch.Tensor:
        return self.frame_pool(img_frames)  # (B, T, d_img) -> (B, d_img)
