"""Encoders by name (`@register("name")`), one per modality, grouped by presets.

Importing this package is light: encoder modules import torch / pymoten / open_clip only when
an encoder is built. Built-in encoder modules are imported lazily by `create_encoder`.
"""

from cineneuron.encoders.registry import (  # noqa: F401
    Encoder,
    EncoderSet,
    create_encoder,
    create_encoders,
    register,
    registered,
)
