"""Interpretation maps (the paper's Fig. 5 / S2) checked against the simulator's planted truth.

A voxel's importance is gradient x input over the test set: the mean over test samples of
|x_v * d s / d x_v| summed over response TRs, where s is the summed cosine of the image, text
and action predictions with the seen clip's true embeddings (the same s for every variant, so
maps differ only through the models). The first layer's weight norms were tried first: AdamW's
decay shrinks every voxel's weights alike, so they stayed at the voxel-blind shares. The simulator knows each voxel's type, so we can say which share of the
importance lands on motion-tuned and on object-tuned (category + ventral attribute) voxels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MOTION_TYPES = ("motion",)
OBJECT_TYPES = ("face_body", "animal", "vehicle", "object")


def voxel_importance(checkpoint: Path, subject: str, voxels: np.ndarray, targets: dict) -> np.ndarray:
    """(V_kept,) gradient x input importance of each voxel the model sees (the mask's voxels)."""
    import torch
    import torch.nn.functional as F

    from cineneuron.brain.model import load_checkpoint

    model, _, _ = load_checkpoint(checkpoint)
    model.eval()
    x = torch.tensor(voxels, dtype=torch.float32, requires_grad=True)  # (N, n_tr, V)
    out = model(x, subject)
    s = 0.0
    for k in ("img", "txt", "act"):
        pred = out[k].float()
        pred = pred.mean(1) if pred.ndim == 3 else pred  # per-frame image predictions: pool them
        s = s + F.cosine_similarity(pred, torch.as_tensor(targets[k], dtype=torch.float32), dim=-1).sum()
    s.backward()
    return (x.grad * x).abs().sum(1).mean(0).detach().numpy()  # (V,)


def importance_shares(importance: np.ndarray, mask: np.ndarray, truth: dict) -> dict:
    """Share of the importance on motion- and object-tuned voxels, and those voxels' share of
    the kept voxels (what a voxel-blind map would give)."""
    types = [str(t) for t in truth["type_names"]]
    vtype = truth["vtype"][mask]  # types of the kept voxels, in the model's column order
    total = float(importance.sum()) or 1.0
    out = {}
    for name, group in (("motion", MOTION_TYPES), ("object", OBJECT_TYPES)):
        sel = np.isin(vtype, [types.index(t) for t in group])
        out[f"{name}_share"] = float(importance[sel].sum() / total)
        out[f"{name}_voxel_fraction"] = float(sel.mean())
    return out


def plot_cortex(path: Path, maps: dict[str, np.ndarray], mask: np.ndarray, truth: dict) -> Path:
    """One panel per variant: kept voxels at their receptive-field centre, marker by voxel type,
    colour by importance (normalised per variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [str(t) for t in truth["type_names"]]
    x, y, vt = truth["rf_x"][mask], truth["rf_y"][mask], truth["vtype"][mask]
    markers = {"early": ".", "motion": ">", "face_body": "o", "animal": "s", "vehicle": "D", "place": "^", "object": "*",
               "silent": "x"}
    fig, axes = plt.subplots(1, len(maps), figsize=(3.3 * len(maps), 3.4), squeeze=False)
    for ax, (name, imp) in zip(axes[0], maps.items()):
        c = imp / max(float(imp.max()), 1e-12)
        for i, t in enumerate(types):
            sel = vt == i
            if sel.any():
                ax.scatter(x[sel], y[sel], c=c[sel], cmap="viridis", vmin=0, vmax=1, s=10,
                           marker=markers.get(t, "."), label=t)
        ax.set_xlim(0, 1)
        ax.set_ylim(1, 0)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=6, loc="lower left", markerscale=1.2)
    fig.suptitle("voxel importance on the simulated cortex (RF position; marker = planted type)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def interpretation(run, plot_path: Path) -> dict:
    """Per variant of one seed: importance shares on the planted voxel types, and the cortex plot."""
    truth = dict(np.load(run.setup.work / "world" / "truth" / "subject1.npz"))
    mask = run.store.subject_mask("synth", "1").astype(bool)
    maps, out = {}, {}
    for v, rec in run.recs.items():
        stage1 = rec.checkpoint.parent / "stage1"
        ckpt = stage1 if (stage1 / "model.safetensors").exists() else rec.checkpoint
        imp = voxel_importance(ckpt, "1", run.test["voxels"], run.tt)
        maps[v] = imp
        out[v] = importance_shares(imp, mask, truth)
    out["_plot"] = str(plot_cortex(plot_path, maps, mask, truth))
    return out
