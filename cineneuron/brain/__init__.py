"""The Brain Model (fMRI -> global token g + fMRI embedding F), its heads, losses, the ridge
baseline and the data it reads from the store. Training loops live in `cineneuron.train`.

Importing this package is light: names are loaded from their modules (which import torch)
on first use, so `from cineneuron.brain import BrainModel` works without paying for torch in
code that only imports the package.

    model.py        BrainModelConfig, BrainModel, create_brain_model, save/load_checkpoint
    mlp.py          MLP backbone          transformer.py   transformer backbone
    heads.py        img/txt/act/cls heads and the learned frame pooling
    losses.py       info_nce, focal_loss, category_loss, stage1_loss
    ridge.py        RidgeBaseline          data.py         StoreBatches, load_split, load_targets
"""

from importlib import import_module

_EXPORTS = {
    "BrainModel": "model", "BrainModelConfig": "model", "SubjectSpec": "model", "TargetDims": "model",
    "create_brain_model": "model", "save_checkpoint": "model", "load_checkpoint": "model",
    "MLPConfig": "mlp", "TransformerConfig": "transformer",
    "LossWeights": "losses", "info_nce": "losses", "focal_loss": "losses", "bce_loss": "losses",
    "category_loss": "losses", "stage1_loss": "losses",
    "RidgeBaseline": "ridge",
}

__all__ = [
    "BrainModel", "BrainModelConfig", "LossWeights", "MLPConfig", "RidgeBaseline",
    "SubjectSpec", "TargetDims", "TransformerConfig", "bce_loss", "category_loss",
    "create_brain_model", "focal_loss", "info_nce", "load_checkpoint", "save_checkpoint",
    "stage1_loss",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"cineneuron.brain.{_EXPORTS[name]}"), name)
