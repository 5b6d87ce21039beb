"""The Wan LoRA's saved layout and its loader (inference); `cineneuron.train.wan_lora` writes it."""

from __future__ import annotations

from pathlib import Path

from cineneuron.errors import MissingWeightsError

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
LORA_SIDECAR = "lora_config.json"


def load_lora(target, directory: str | Path) -> None:
    """Load a `save_lora` folder into a WanPipeline or a bare WanTransformer3DModel."""
    from diffusers import WanPipeline

    path = Path(directory) / LORA_WEIGHTS
    if not path.exists():
        raise MissingWeightsError(f"missing {path}: point lora_dir at a folder written by save_lora")
    if isinstance(target, WanPipeline):
        target.load_lora_weights(str(directory), weight_name=LORA_WEIGHTS, use_safetensors=True)
        return
    state, meta = WanPipeline.lora_state_dict(
        str(directory), weight_name=LORA_WEIGHTS, use_safetensors=True, return_lora_metadata=True
    )
    WanPipeline.load_lora_into_transformer(state, transformer=target, metadata=meta)

