"""The synthetic world and simulated subjects: a small scientific instrument with known truth.

A toy world of objects (people, animals, vehicles, food, ...) doing simple actions on indoor and
outdoor backgrounds is rendered into 2 s clips with captions, superclass labels and their
generating factors. Simulated subjects watch it: voxels with receptive fields and tunings to
contrast, motion direction, categories and scene type, a double-gamma HRF, drift and AR(1)
noise. Everything is written in the cc2017 layout (see `writer` for the exact files), so the
cc2017 adapter reads it like the real dataset.

    from cineneuron.sources.synth import generate
    generate("world/", size="demo", subjects=1, seed=0)
"""

from cineneuron.sources.synth.api import generate
from cineneuron.sources.synth.data import kind_names, sizes, superclass_of
from cineneuron.sources.synth.scenes import ACTIONS

KINDS: list[str] = kind_names()
kind_superclass: dict[str, str] = superclass_of()
SIZES: list[str] = list(sizes())

__all__ = ["ACTIONS", "KINDS", "SIZES", "generate", "kind_superclass"]
