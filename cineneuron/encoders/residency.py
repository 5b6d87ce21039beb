"""Encoders that do not fit on their device together take turns on it.

With offloading, every encoder's model waits in CPU memory and visits its device only for its
own encode call, so the device holds one model at a time (the paper preset's four come to
about 14 GiB in bf16 and 26 GiB in fp32; the largest alone, UMT5-XXL, to about 11 / 21 GiB).
`auto` offloads when the models' weights together exceed 90 % of the device's memory.
Moving a model costs one host-to-device copy per batch, so batches should be large.
"""

from __future__ import annotations

import contextlib

FIT_FRACTION = 0.9  # leave room for activations beside the resident weights


def torch_model(encoder):
    """The encoder's torch module, or None (the classic encoders are numpy)."""
    model = getattr(encoder, "_model", None)
    return model if model is not None and hasattr(model, "parameters") and hasattr(model, "to") else None


def model_bytes(encoder) -> int:
    model = torch_model(encoder)
    return 0 if model is None else sum(p.numel() * p.element_size() for p in model.parameters())


def on_accelerator(encoder) -> bool:
    return str(getattr(encoder.config, "device", "cpu")).startswith("cuda")


def should_offload(mode: str, total_bytes: int, device_bytes: int) -> bool:
    """mode: "on", "off" or "auto" (offload when the weights exceed FIT_FRACTION of the device)."""
    if mode in ("on", "off"):
        return mode == "on"
    return total_bytes > FIT_FRACTION * device_bytes


class Residency:
    """Where each encoder's model lives between calls: on its device, or parked in CPU memory."""

    def __init__(self, offload: bool = False):
        self.offload = offload

    def park(self, encoder) -> None:
        """Move a built model off its accelerator (a no-op without offloading or on the CPU)."""
        model = torch_model(encoder)
        if self.offload and model is not None and on_accelerator(encoder):
            model.to("cpu")
            _free_cache()

    @contextlib.contextmanager
    def on_device(self, encoder):
        """Run one encode call with the encoder's model on its device, then park it again."""
        model = torch_model(encoder)
        if not (self.offload and model is not None and on_accelerator(encoder)):
            yield
            return
        model.to(encoder.config.device)
        try:
            yield
        finally:
            model.to("cpu")
            _free_cache()


def _free_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
