"""Training: stage 1 (the Brain Model) and stage 2 (the MoM router; with the Wan decoder also
the fusion and the DiT's LoRA), over one shared loop (`loop.py`).

    from cineneuron.train import train_stage1, train_stage2
    train_stage1(store, cfg, "1"); train_stage2(store, cfg, "1")

Names load on first use, so importing this package does not import torch.
"""

from importlib import import_module

_EXPORTS = {"train_stage1": "stage1", "Stage1Result": "stage1", "train_stage2": "api", "Schedule": "loop",
            "Stage1Trainer": "loop"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"cineneuron.train.{_EXPORTS[name]}"), name)
