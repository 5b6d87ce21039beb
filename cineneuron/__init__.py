"""CineNeuron: reconstruct the video a person watched from their fMRI.

The package is a library; `cineneuron.cli` is a thin runner over it. A notebook session:

    import cineneuron as cn
    cfg = cn.load_config(overrides={"store.uri": "cn-demo/store"})
    store = cn.Store.from_config(cfg.store)
    rec = cn.Reconstructor(store, cfg, subject="1")
    out = rec(voxels, out="x.mp4")          # memories and a video per sample

Names are imported on first use, so `import cineneuron` stays free of torch, diffusers,
transformers and LanceDB; each heavy library loads inside the function that needs it.
"""

from importlib import import_module

__version__ = "0.1.0"

# name -> (module, attribute): the public API, in the order of the data flow.
_EXPORTS = {
    "RootConfig": ("cineneuron.config", "RootConfig"),
    "load_config": ("cineneuron.config", "load_config"),
    "generate_world": ("cineneuron.sources.synth", "generate"),
    "Store": ("cineneuron.store", "Store"),
    "ingest": ("cineneuron.ingest.api", "ingest"),
    "load_split": ("cineneuron.brain.data", "load_split"),
    "train_stage1": ("cineneuron.train.stage1", "train_stage1"),
    "train_stage2": ("cineneuron.train.api", "train_stage2"),
    "Reconstructor": ("cineneuron.decode.reconstruct", "Reconstructor"),
    "evaluate": ("cineneuron.eval.run", "evaluate_subject"),
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cineneuron' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    return getattr(import_module(module), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
