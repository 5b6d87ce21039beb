"""Encoders of the `paper` preset, loaded from local weights (never downloaded).

Importing this package registers them: `openclip-image`, `openclip-text` (OpenCLIP),
`viclip` and `xclip` (action), `umt5` (Wan2.1's text encoder, cond). It imports no torch;
each encoder imports its libraries in `build()`.
"""

from cineneuron.encoders.paper import openclip, umt5, viclip, xclip  # noqa: F401
