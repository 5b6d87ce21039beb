"""fMRI ingestion: read a subject's runs, preprocess, select voxels, align samples to clips.

`load_cc2017_subject` and `load_cinebrain_subject` return a `SubjectData`, whose `batches()`
yields `FmriBatch`es for the store. Readers, preprocessing and selection are separate modules
so other sources (the simulator, future datasets) can reuse them.
"""

from cineneuron.fmri.cc2017_fmri import CC2017Config, load_cc2017, load_cc2017_subject
from cineneuron.fmri.cinebrain_fmri import CineBrainConfig, load_cinebrain, load_cinebrain_subject
from cineneuron.fmri.preprocess import Run, SubjectData
from cineneuron.fmri.qc import format_qc
from cineneuron.fmri.selection import VoxelSelection, mask_hash

__all__ = [
    "CC2017Config", "CineBrainConfig", "Run", "SubjectData", "VoxelSelection", "format_qc",
    "load_cc2017", "load_cc2017_subject", "load_cinebrain", "load_cinebrain_subject", "mask_hash",
]
