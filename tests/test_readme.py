"""The README's "From Python" session runs exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_snippet(section: str = "## From Python") -> str:
    text = README.read_text().split(section, 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_from_python_session_runs(tmp_path):
    code = python_snippet()
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ingest synth: " in r.stdout and "router weights" in r.stdout
    video = tmp_path / "recon.mp4"
    assert video.stat().st_size > 1000
    memories = [ln for ln in r.stdout.splitlines() if re.match(r"^-?\d\.\d{3}  ", ln)]
    assert len(memories) == 5  # decode.top_k
