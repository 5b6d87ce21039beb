"""The synth *source adapter*: `cn synth` output read as clips (the simulator is `sources/synth/`).

The simulator writes the cc2017 layout plus annotations.json with the world's ground truth, so
this adapter is the cc2017 clips adapter under its own name.
"""

from __future__ import annotations

from cineneuron.sources.cc2017_clips import CC2017Source


class SynthSource(CC2017Source):
    """`cn synth` output: the cc2017 layout plus annotations.json with the world's ground truth."""

    name = "synth"
