"""Weight-file checks and hashes shared by the `paper` encoders.

`require()` turns a missing file into a one-line `MissingWeightsError` that names the path and
the file the config expected, so `check_weights()` fails before any model is built.
`sha256_files()` hashes weight files; each file's digest is cached by (path, size, mtime, ctime, inode)
in memory and in a small JSON file, because hashing a multi-GB checkpoint takes many seconds and
`identity()` is asked for on every ingest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cineneuron.errors import MissingWeightsError

# Suffixes of files that carry weights (or define how they are read: configs, vocabularies).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".npz")
CONFIG_SUFFIXES = (".json", ".model", ".txt", ".gz")

_MEMO: dict[tuple, str] = {}  # (abs path, size, mtime_ns, ctime_ns, inode) -> sha256 hex


def require(path: Path, expected: str, *, kind: str = "file") -> Path:
    """Return `path` if it exists (as a file, or a dir for kind="dir"), else raise one line."""
    path = Path(path).expanduser()
    ok = path.is_dir() if kind == "dir" else path.is_file()
    if not ok:
        raise MissingWeightsError(f"missing weights: {path} not found; the config expects {expected} there")
    return path


def require_any(folder: Path, names: tuple[str, ...], expected: str) -> Path:
    """The first of `names` that exists in `folder`; else a one-line error naming them all."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise MissingWeightsError(
        f"missing weights: none of {', '.join(names)} found in {folder}; the config expects {expected} there"
    )


def hf_weight_files(folder: Path, expected: str) -> list[Path]:
    """Weight files of a transformers `save_pretrained` folder, shards included (all must exist)."""
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return [folder / single]
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            for shard in shards:
                require(folder / shard, f"{expected} (shard listed in {index})")
            return [folder / index] + [folder / s for s in shards]
    raise MissingWeightsError(
        f"missing weights: no model.safetensors, pytorch_model.bin or *.index.json in {folder}; "
        f"the config expects {expected} there"
    )


def dir_files(folder: Path) -> list[Path]:
    """Files of a model folder that change what it computes: weights, configs, vocabularies."""
    keep = WEIGHT_SUFFIXES + CONFIG_SUFFIXES
    out = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):  # .cache/, .git/ of HF snapshots
            continue
        if p.is_file() and p.suffix in keep:
            out.append(p)
    return out


def _cache_file() -> Path:
    root = os.environ.get("CN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "cineneuron")
    return Path(root) / "weights_sha256.json"


def _key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _load_disk() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_disk(entries: dict) -> None:
    try:  # a read-only home is fine: the hash is only recomputed next time
        f = _cache_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(f)
    except OSError:
        pass


def sha256_file(path: Path) -> str:
    """sha256 of one file, cached by (path, size, mtime, inode)."""
    key = _key(Path(path))
    if key in _MEMO:
        return _MEMO[key]
    disk = _load_disk()
    entry = disk.get(key[0])
    if isinstance(entry, dict) and entry.get("stat") == list(key[1:]):
        _MEMO[key] = entry["sha256"]
        return entry["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    _MEMO[key] = digest
    disk[key[0]] = {"stat": list(key[1:]), "sha256": digest}  # one entry per path: no growth
    _save_disk(disk)
    return digest


def sha256_files(files: list[Path], root: Path | None = None) -> str:
    """One sha256 over several files: each file's name (relative to `root`) and digest."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: str(p)):
        name = str(Path(f).relative_to(root)) if root else Path(f).name
        h.update(f"{name}\0{sha256_file(Path(f))}\n".encode())
    return h.hexdigest()
