"""Ingest: a dataset on disk -> clips (and a subject's fMRI) in the store.

    from cineneuron.ingest import ingest
    result = ingest(store, "synth", "world/", cfg, subjects=["1"])

`clips.py` decodes, encodes and writes clips; `fmri.py` reads, preprocesses and writes a
subject's fMRI. Names load on first use, so importing this package stays light.
"""

from importlib import import_module

_EXPORTS = {
    "ingest": "api", "IngestResult": "api", "ingest_options": "api",
    "IngestOptions": "clips", "IngestReport": "clips", "ingest_clips": "clips",
    "FmriReport": "fmri", "ingest_subject": "fmri",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"cineneuron.ingest.{_EXPORTS[name]}"), name)
