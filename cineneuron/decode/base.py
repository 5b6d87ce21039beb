"""The one decoder interface: replay (CPU) and Wan (GPU) both turn query results into videos."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Decoder(Protocol):
    name: str

    def decode(self, store, results: list, preds: dict | None = None) -> list[np.ndarray]:
        """One (F, H, W, 3) uint8 video per QueryResult; preds: the queries' head outputs and F."""
        ...


def create_decoder(cfg, store=None, **kw) -> Decoder:
    """cfg: the root config's `decode` section."""
    if cfg.decoder == "replay":
        from cineneuron.decode.replay import ReplayDecoder

        return ReplayDecoder(temperature=cfg.temperature)
    from cineneuron.decode.wan_decoder import WanMoMDecoder

    return WanMoMDecoder(cfg, store=store, **kw)
