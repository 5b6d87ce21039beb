"""Optional captioner for clips that come without a caption (DESIGN section 1).

`get_captioner(config)` returns a `Captioner` when one is configured, else None (with a notice
saying how to configure one). The only implementation is Qwen2.5-VL through transformers, loaded
from a local folder; weights are never downloaded.

Config (a dict, or an object with the same attributes), either the whole config with a
"captioner" section or the section itself:

    captioner:
      name: qwen2.5-vl          # or none
      model_dir: /models/Qwen2.5-VL-3B-Instruct
      device: cpu               # or cuda
      max_new_tokens: 48
      prompt: "Describe this video in one sentence."
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cineneuron.errors import MissingWeightsError

log = logging.getLogger("cineneuron.labels")

DEFAULT_PROMPT = "Describe this video in one short sentence: the main subjects, what they do, and where."
NOT_CONFIGURED = ("no captioner configured, so they get no labels; to caption them set "
                  "encoders.captioner.name=qwen2.5-vl and encoders.captioner.model_dir=<local Qwen2.5-VL folder>")


@runtime_checkable
class Captioner(Protocol):
    def caption(self, frames: np.ndarray) -> str:
        """frames: (T, H, W, 3) uint8 of one clip -> one caption."""
        ...


class QwenVLCaptioner:
    """Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration` + `AutoProcessor`) from a local folder."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_new_tokens: int = 48,
                 prompt: str = DEFAULT_PROMPT, fps: float = 2.0):
        self.model_dir = Path(model_dir).expanduser()
        if not (self.model_dir / "config.json").is_file():
            raise MissingWeightsError(f"Qwen2.5-VL captioner: no config.json in {self.model_dir}; put a local Qwen2.5-VL model folder (config.json, weights, tokenizer, preprocessor) there or unset captioner.model_dir")
        self.device, self.max_new_tokens, self.prompt, self.fps = device, max_new_tokens, prompt, fps
        self._model = self._processor = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self._processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
        self._model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            self.model_dir, local_files_only=True, dtype=dtype).to(self.device).eval()

    def caption(self, frames: np.ndarray) -> str:
        import torch

        self._load()
        frames = np.asarray(frames, dtype=np.uint8)  # (T, H, W, 3)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape}")
        if frames.shape[0] % 2:  # Qwen2.5-VL groups frames in temporal pairs
            frames = np.concatenate([frames, frames[-1:]])
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": self.prompt}]}]
        text = self._processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self._processor(text=[text], videos=[frames], return_tensors="pt",
                                 videos_kwargs={"do_sample_frames": False}).to(self.device)
        with torch.no_grad():
            out = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]  # (1, L_new)
        return " ".join(self._processor.batch_decode(new, skip_special_tokens=True)[0].split())


def _section(config) -> dict:
    if config is None:
        return {}
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    sec = get("captioner", None)
    if sec is None:
        sec = config
    if not isinstance(sec, dict):
        sec = {k: getattr(sec, k) for k in ("name", "model_dir", "device", "max_new_tokens", "prompt") if hasattr(sec, k)}
    return sec


def captioner_notice(config) -> str | None:
    """Why `get_captioner(config)` would return None, or None when a captioner is configured."""
    sec = _section(config)
    name = str(sec.get("name") or "").lower()
    if name in ("", "none") or not sec.get("model_dir"):
        return NOT_CONFIGURED
    if name not in ("qwen2.5-vl", "qwen2_5_vl", "qwen-vl", "qwen"):
        return f"unknown captioner {sec.get('name')!r}; the only captioner is qwen2.5-vl"
    return None


def get_captioner(config, notify: Callable[[str], None] | None = None) -> Captioner | None:
    """The configured captioner, or None with a notice (to `notify`, else the log) when none is.

    A configured captioner whose model folder is missing raises MissingWeightsError.
    """
    notice = captioner_notice(config)
    if notice:
        (notify or log.info)(notice)
        return None
    sec = _section(config)
    kwargs = {k: sec[k] for k in ("device", "max_new_tokens", "prompt") if sec.get(k) is not None}
    return QwenVLCaptioner(sec["model_dir"], **kwargs)
