"""CineNeuron: reconstruct the video a person watched from their fMRI.

The package is a library; `cineneuron.cli` is a thin runner over it. Importing the package
(or the CLI) must stay free of torch, diffusers and transformers: heavy libraries are imported
inside the functions that need them.
"""

__version__ = "0.1.0"
