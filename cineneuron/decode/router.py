"""The MoM router (torch): fMRI embedding F -> weights over the three spaces, and its file.

`retrieve` in `cineneuron.decode.mom` needs only the weights this module computes, so search
stays numpy. Training-time losses over mixture scores live here too, because the Wan and the
replay stage 2 both use them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn

ROUTER_FILE = "router.safetensors"


class Router(nn.Module):
    """Linear + softmax over (w_t, w_i, w_a) from the mean-pooled fMRI embedding."""

    def __init__(self, d_f: int):
        super().__init__()
        self.proj = nn.Linear(d_f, 3)
        nn.init.zeros_(self.proj.weight)  # start from equal weights: the plain sum of cosines
        nn.init.zeros_(self.proj.bias)

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.proj(F.mean(dim=1)), dim=-1)  # (B, L, D_f) -> (B, 3)


def query_vector(txt: torch.Tensor, img: torch.Tensor, act: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """[w_t q̂_t, w_i q̂_i, w_a q̂_a]: (B, d_t + d_i + d_a)."""
    parts = [Fn.normalize(x, dim=-1) * w[:, i:i + 1] for i, x in enumerate((txt, img, act))]
    return torch.cat(parts, dim=-1)


def router_infonce(q: torch.Tensor, pool_mix: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over mixture scores against the pool; the positive is the sample's own clip row.

    q: (B, d_mix), pool_mix: (N, d_mix), positive: (B,) row indices into the pool.
    """
    scores = q @ pool_mix.T  # (B, N) mixture scores
    return Fn.cross_entropy(scores / temperature, positive)


def save_router(directory: Path, router: Router) -> None:
    from safetensors.torch import save_file

    from cineneuron.atomic import atomic_write

    tensors = {k: v.detach().cpu().contiguous() for k, v in router.state_dict().items()}
    atomic_write(Path(directory) / ROUTER_FILE, lambda p: save_file(tensors, str(p)))


def load_mom(directory: Path):
    """(brain model, router, brain config, extra); a stage-1 checkpoint gets an untrained router."""
    from safetensors.torch import load_file

    from cineneuron.brain.model import load_checkpoint

    model, mcfg, extra = load_checkpoint(directory)
    router = Router(mcfg.d_f)
    if (Path(directory) / ROUTER_FILE).exists():
        router.load_state_dict(load_file(str(Path(directory) / ROUTER_FILE)))
    return model, router.eval(), mcfg, extra


def predict_mom(model, router, voxels: np.ndarray, subject: str, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Head outputs (unit vectors), class probabilities, router weights and the fMRI embedding F
    (B, L, D_f), which the Wan decoder's fusion needs, for a batch of fMRI."""
    parts: dict[str, list] = {k: [] for k in ("txt", "img", "act", "w", "cls_probs", "F")}
    model.eval()
    router.eval()
    with torch.no_grad():
        x = torch.as_tensor(voxels, dtype=torch.float32)
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size], subject)
            for k in ("txt", "img", "act"):
                parts[k].append(torch.nn.functional.normalize(out[k], dim=-1).numpy())
            parts["w"].append(router(out["F"]).numpy())
            parts["cls_probs"].append(torch.sigmoid(out["cls_logits"]).numpy())
            parts["F"].append(out["F"].numpy())  # (b, L, D_f)
    return {k: np.concatenate(v) for k, v in parts.items()}
