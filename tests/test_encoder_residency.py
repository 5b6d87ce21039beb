"""Encoders that do not fit on the device together take turns: one model there at a time.

No GPU here, so the device is a label: fake models record where they are told to go, and each
encode call checks that its own model, and only its own, is on the device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cineneuron.encoders.residency import Residency, should_offload
from cineneuron.ingest import clips as C

WHERE: dict[str, str] = {}


class FakeModel(torch.nn.Module):
    def __init__(self, name: str, n: int):
        super().__init__()
        self.name, self.w = name, torch.nn.Parameter(torch.zeros(n))

    def to(self, device, *a, **k):  # the device is a label: nothing moves on a CPU-only machine
        WHERE[self.name] = str(device)
        return self


class FakeEncoder:
    def __init__(self, name: str, n: int, out):
        self.name, self.n, self.out, self._model = name, n, out, None
        self.config = type("Cfg", (), {"device": "cuda"})()
        self.calls = 0

    def build(self):
        self._model = FakeModel(self.name, self.n)
        WHERE[self.name] = "cuda"  # built straight onto the device, as the paper encoders are
        assert sum(v == "cuda" for v in WHERE.values()) == 1, f"two models on the device while loading: {WHERE}"
        return self

    def _check_alone(self):
        on = [k for k, v in WHERE.items() if v == "cuda"]
        assert on == [self.name], f"{self.name} encodes with {on} on the device"
        self.calls += 1

    def encode_frames(self, frames):
        self._check_alone()
        return np.zeros((len(frames), frames.shape[1], 4), np.float32)

    def encode_video(self, frames):
        self._check_alone()
        return np.zeros((len(frames), 4), np.float32)

    def encode_text(self, texts):
        self._check_alone()
        return np.zeros((len(texts), 4), np.float32)

    def encode_cond(self, texts):
        self._check_alone()
        return [np.zeros((2, 4), np.float16) for _ in texts]


class FakeSet:
    def __init__(self):
        self.image, self.action = FakeEncoder("image", 10, None), FakeEncoder("action", 20, None)
        self.text, self.cond = FakeEncoder("text", 30, None), FakeEncoder("cond", 40, None)
        self.residency = None

    def items(self):
        return [(m, getattr(self, m)) for m in ("image", "text", "action", "cond")]


def _decoded(n: int = 3):
    from cineneuron.schemas.records import ClipSpec

    specs = [ClipSpec(source="s", video=f"v{i}.mp4", video_uri=f"/v{i}.mp4", start_s=0.0, end_s=2.0, split="train",
                      caption="a dog runs") for i in range(n)]
    return [C.Decoded(s, np.zeros((2, 8, 8, 3), np.uint8), []) for s in specs]


def test_should_offload():
    assert should_offload("on", 1, 10**12) and not should_offload("off", 10**12, 1)
    assert should_offload("auto", 95, 100) and not should_offload("auto", 85, 100)


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_models_take_turns_when_they_do_not_fit(monkeypatch, mode):
    WHERE.clear()
    monkeypatch.setattr("cineneuron.runtime.device_memory_bytes", lambda device: 300)  # 4 models: 400 bytes
    encs = FakeSet()
    C._build(encs, mode)
    assert encs.residency.offload and set(WHERE.values()) == {"cpu"}  # all parked after loading
    rows, _ = C.encode_batch(encs, _decoded())
    assert len(rows) == 3 and all(e.calls == 1 for _, e in encs.items())
    assert set(WHERE.values()) == {"cpu"}  # each went back after its call


def test_auto_keeps_them_resident_when_they_fit(monkeypatch):
    WHERE.clear()
    monkeypatch.setattr("cineneuron.runtime.device_memory_bytes", lambda device: 10**9)
    encs = FakeSet()
    C._build(encs, "auto")
    assert not encs.residency.offload and set(WHERE.values()) == {"cuda"}
    with Residency(False).on_device(encs.image):
        assert WHERE["image"] == "cuda"


def test_off_builds_all_onto_the_device():
    WHERE.clear()
    encs = FakeSet()
    with pytest.raises(AssertionError, match="two models on the device"):
        C._build(encs, "off")  # what ingest did before: every model loaded onto the device at once
