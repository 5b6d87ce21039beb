"""Device and precision from the config: `auto` resolved once, the same way everywhere.

`encoders.device`, `train.device` = auto | cpu | cuda | cuda:N; `auto` is cuda when a CUDA GPU
is visible, else cpu. `*.precision` = auto | fp32 | bf16 | fp16; `auto` is bf16 on cuda and
fp32 on cpu. Torch is imported only inside the functions (the CLI imports this module).
Device and precision are recorded in every run but are not part of any encoder identity: the
same weights on another device are the same encoder (within the tolerance in NOTES.md).
"""

from __future__ import annotations

import os

from cineneuron.errors import CNError

PRECISIONS = ("fp32", "bf16", "fp16")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


def resolve_device(name: str | None) -> str:
    """'auto'/None -> 'cuda' or 'cpu'; an explicit cuda device must exist (one clear line if not)."""
    name = (name or "auto").strip()
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not cuda_available():
            raise CNError(f"device {name!r} asked for but no CUDA GPU is visible; set it to 'cpu' or 'auto'")
        return name
    raise CNError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def resolve_precision(precision: str | None, device: str) -> str:
    """'auto'/None -> bf16 on cuda, fp32 on cpu; fp16/bf16 on cpu are allowed but slow."""
    p = (precision or "auto").strip()
    if p == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if p not in PRECISIONS:
        raise CNError(f"unknown precision {p!r}; use auto, fp32, bf16 or fp16")
    return p


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def encoder_runtime(enc_cfg) -> dict:
    """What every encoder is built with: {"device", "precision", "weights_dir"} from `encoders.*`."""
    device = resolve_device(enc_cfg.device)
    out = {"device": device, "precision": resolve_precision(enc_cfg.precision, device)}
    if enc_cfg.weights_dir:
        out["weights_dir"] = str(enc_cfg.weights_dir)
    return out


def train_runtime(train_cfg) -> dict:
    device = resolve_device(train_cfg.device)
    return {"device": device, "precision": resolve_precision(train_cfg.precision, device)}


def device_memory_bytes(device: str) -> int:
    """Total memory of a device: the GPU's, or the machine's RAM for cpu."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def device_report() -> dict:
    """The device found, for `cn doctor`."""
    out = {"cuda": cuda_available(), "cpu_ram_gib": round(device_memory_bytes("cpu") / 2**30, 1)}
    if out["cuda"]:
        import torch

        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), n_gpus=torch.cuda.device_count(),
                   bf16=bool(torch.cuda.is_bf16_supported()))
    return out
