"""ViCLIP (InternVid, OpenGVLab) laid out so the official checkpoint loads with strict=True.

Written from the published layout, not copied. The state dict is
`vision_encoder.*` (a CLIP ViT whose patch embedding is a Conv3d with a temporal kernel of 1,
plus a learned temporal position embedding added to every patch token), `text_encoder.*` (a
CLIP text transformer with a causal mask and a context of 32) and the scalar `temp`.

Only the evaluation feature path is here: upstream drops 90% of the video tokens at random
while training; features for retrieval use all of them. Drop-path and dropout are identity in
evaluation and carry no weights, so they are left out.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (the text tower does this; it matters under fp16/bf16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight.float(), self.bias.float()  # the model may have been cast to half
        return nn.functional.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class ResidualBlock(nn.Module):
    """Pre-norm block: x + attn(ln_1 x), then x + mlp(ln_2 x); 4x MLP with QuickGELU."""

    def __init__(self, width: int, heads: int, norm: type[nn.LayerNorm]):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = norm(width)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, 4 * width), gelu=QuickGELU(), c_proj=nn.Linear(4 * width, width))
        )
        self.ln_2 = norm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)  # (B, N, W)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, norm: type[nn.LayerNorm] = nn.LayerNorm):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(width, heads, norm) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTower(nn.Module):
    """Video ViT: per-frame patches + spatial and temporal positions, one CLS token per clip."""

    def __init__(self, image_size, patch_size, width, layers, heads, embed_dim, num_frames, tubelet=1):
        super().__init__()
        k = (tubelet, patch_size, patch_size)
        self.conv1 = nn.Conv3d(3, width, k, stride=k, bias=False)
        grid = image_size // patch_size
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, num_frames, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) normalised frames -> (B, embed_dim) raw features."""
        x = self.conv1(video)  # (B, W, T, g, g)
        b, w, t = x.shape[:3]
        x = x.flatten(3).permute(0, 2, 3, 1)  # (B, T, N, W)
        x = x + self.positional_embedding[1:].to(x.dtype)  # spatial position of each patch
        temporal = self.temporal_positional_embedding.to(x.dtype)  # (1, F, W)
        if t == 1:  # a single image: upstream adds the mean temporal embedding
            temporal = temporal.mean(1, keepdim=True)
        elif t != temporal.shape[1]:
            raise ValueError(f"ViCLIP was built for {temporal.shape[1]} frames, got {t}")
        x = x + temporal.unsqueeze(2)  # (B, T, N, W): same offset for every patch of a frame
        x = x.transpose(1, 2).reshape(b, -1, w)  # (B, N*T, W), patch-major as upstream
        cls = (self.class_embedding + self.positional_embedding[0]).to(x.dtype).expand(b, 1, w)  # (B, 1, W)
        x = self.ln_pre(torch.cat([cls, x], dim=1))  # (B, 1+N*T, W)
        x = self.transformer(x)
        return self.ln_post(x[:, 0]) @ self.proj  # (B, embed_dim)


class TextTower(nn.Module):
    """CLIP text transformer; the feature is the EOT token's (the highest id in a row)."""

    def __init__(self, width, layers, heads, embed_dim, context_length, vocab_size):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, width))
        self.transformer = Transformer(width, layers, heads, norm=FP32LayerNorm)
        self.ln_final = FP32LayerNorm(width)
        self.text_projection = nn.Parameter(width**-0.5 * torch.randn(width, embed_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids, L = context length, zero-padded -> (B, embed_dim) raw features."""
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:n]  # (B, L, W)
        causal = torch.ones(n, n, dtype=torch.bool, device=tokens.device).triu(1)  # True = hidden
        x = self.ln_final(self.transformer(x, causal))  # (B, L, W)
        eot = tokens.argmax(dim=-1)  # (B,)
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection  # (B, embed_dim)


class ViCLIP(nn.Module):
    """The module whose state dict is the official checkpoint's `model` entry."""

    def __init__(
        self,
        *,
        image_size: int = 224,
        patch_size: int = 14,
        vision_width: int = 1024,
        vision_layers: int = 24,
        vision_heads: int = 16,
        embed_dim: int = 768,
        num_frames: int = 8,
        tubelet: int = 1,
        text_width: int = 768,
        text_layers: int = 12,
        text_heads: int = 12,
        context_length: int = 32,
        vocab_size: int = 49408,
    ):
        super().__init__()
        self.vision_encoder = VisionTower(
            image_size, patch_size, vision_width, vision_layers, vision_heads, embed_dim, num_frames, tubelet
        )
        self.text_encoder = TextTower(text_width, text_layers, text_heads, embed_dim, context_length, vocab_size)
        self.temp = nn.Parameter(torch.tensor(1 / 100.0))  # contrastive temperature (training only)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) normalised frames -> (B, embed_dim), not normalised."""
        return self.vision_encoder(frames.permute(0, 2, 1, 3, 4))  # tower takes (B, 3, T, H, W)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, context) CLIP-BPE token ids -> (B, embed_dim), not normalised."""
        return self.text_encoder(tokens)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of an official `.pth` (`{"model": state_dict}`) or a converted `.safetensors`.

    A `.pth` is read with `weights_only=True` only: nothing from outside is ever unpickled.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    return obj["model"] if isinstance(obj, dict) and "model" in obj else obj


def build_viclip(state_dict: dict[str, torch.Tensor], dtype=torch.float32, **arch) -> ViCLIP:
    """A ViCLIP of the given architecture holding `state_dict` exactly (strict: no missing/extra keys).

    The module is made on the meta device and takes the checkpoint's tensors, so a 400M-parameter
    model is not first filled with random numbers.
    """
    with torch.device("meta"):
        model = ViCLIP(**arch)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.to(dtype).eval()


def convert_to_safetensors(src: str | Path, dst: str | Path) -> Path:
    """One-time conversion of the official `.pth` to `.safetensors` (no pickle at load time)."""
    from safetensors.torch import save_file

    sd = read_state_dict(src)
    sd = {k: v.detach().contiguous().clone() for k, v in sd.items()}  # clone: no shared storage
    save_file(sd, str(dst), metadata={"format": "pt", "source": Path(src).name})
    return Path(dst)
