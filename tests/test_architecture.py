"""The folders tell the data flow; these tests keep the imports between parts as ARCHITECTURE.md says."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "cineneuron"

# part -> parts it must never import (anywhere in the file, lazy imports included)
FORBIDDEN = {
    "store": ("brain", "train", "decode", "eval", "ingest", "experiments"),  # it may rebuild its encoders
    "schemas": ("brain", "train", "decode", "eval", "ingest", "store", "experiments"),
    "decode": ("train", "experiments"),
    "brain": ("eval", "train", "decode", "experiments"),
    "fmri": ("brain", "train", "decode", "eval", "store"),
    "encoders": ("brain", "train", "decode", "eval"),
    "sources": ("brain", "train", "decode", "eval", "store"),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def violations() -> list[str]:
    bad = []
    for part, banned in FORBIDDEN.items():
        for f in sorted((PKG / part).rglob("*.py")):
            for line, mod in imports_of(f):
                if any(mod == f"cineneuron.{b}" or mod.startswith(f"cineneuron.{b}.") for b in banned):
                    bad.append(f"{f.relative_to(PKG.parent)}:{line} imports {mod}")
    return bad


def test_parts_import_only_downstream():
    assert violations() == []


def test_the_checker_would_catch_a_forbidden_import(tmp_path, monkeypatch):
    fake = tmp_path / "cineneuron"
    (fake / "store").mkdir(parents=True)
    (fake / "store" / "x.py").write_text("def f():\n    from cineneuron.train.loop import Schedule\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    assert violations() == ["cineneuron/store/x.py:2 imports cineneuron.train.loop"]


HEAVY = ("torch", "diffusers", "transformers", "lancedb", "open_clip", "cineneuron.fmri", "scipy", "h5py", "nibabel")


@pytest.mark.parametrize("module", ["cineneuron", "cineneuron.cli", "cineneuron.store", "cineneuron.decode.mom"])
def test_light_imports(module):
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {module} loads {out.stdout.strip()}"


def long_functions(root: Path, limit: int = 80) -> list[str]:
    out = []
    for f in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{f.relative_to(root.parent)}:{node.lineno} {node.name} is {n} lines")
    return out


def test_no_function_over_80_lines():
    assert long_functions(PKG) + long_functions(PKG.parent / "bench") == []
