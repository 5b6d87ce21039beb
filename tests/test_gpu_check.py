"""bench/gpu_check.py at toy size on CPU: the script's whole code path (store, stage 1, the real stage 2, a query)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.mark.slow  # ~70 s on 2 shared cores
def test_gpu_check_toy_runs_the_real_stage2_and_a_generation(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gpu.json"
    assert mod.main(["--toy", "--stage1-batch", "16", "--gen-steps", "2", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["toy"] and r["size"] == [9, 32, 32]
    assert r["stage1"]["steps"] == 1 and r["stage1"]["batch"] == 16
    assert r["stage2"]["steps"] == 3 and r["stage2"]["grad_ckpt"] and r["stage2"]["latents"]["encoded"] == 6
    assert r["stage2"]["s_per_step"] > 0 and r["stage2"]["memory_estimate_gib"] is not None
    g = r["generation"]
    assert g["extrapolated"] and g["s_per_clip_at_50_steps"] == pytest.approx(g["seconds"] * 25, rel=0.01)
    assert Path(g["video"]).stat().st_size > 0
