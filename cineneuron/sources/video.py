"""Video reading: one interface over decord (default) and PyAV (the fallback), run in a worker.

    read_clip_frames(path, spans, n_frames, size) -> [ (n_frames, size, size, 3) uint8, ... ]

Frame geometry. Each frame is resized so that its *short* side equals `size` (aspect kept), on
decode, then centre-cropped to `size x size`. CLIP-style encoders are trained on centre crops,
and a squash would distort shapes differently for every aspect ratio. `crop=False` gives the
squash (plain `size x size` resize) for callers that want the whole field of view.

Sampling. A span [start, end) is cut into `n_frames` equal segments and the frame shown at the
centre of each segment is taken: t_i = start + (i + 0.5) * (end - start) / n, frame =
floor(t_i * fps). Both backends count frames in decode order and assume a constant frame rate,
so they return the same frames (see `sample_indices`).

Isolation. decord leaks memory over many files and can hang on damaged input (dmlc/decord #208,
#197, #157). So decoding runs in a worker process: a fresh interpreter (`python -m
cineneuron.sources.video --worker`), the same isolation as a multiprocessing `spawn` start (never
fork: the parent may hold lancedb/arrow threads) without re-importing the caller's `__main__`.
A fresh reader is built for every file, the worker is recycled every `max_files` files, and
every call (one file) has a timeout. A file that times out, crashes the decoder or cannot be
decoded raises `VideoReadError(path, reason)` for that file only; the next call gets a fresh
worker. On Windows (no fd passing) decoding runs in-process, without the timeout.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cineneuron.errors import CNError

BACKENDS = ("decord", "pyav")
Span = tuple[float, float]


class VideoReadError(CNError):
    """One video file could not be read. The caller records `path` and `reason` and goes on."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"cannot read video {self.path}: {self.reason}")

    def __reduce__(self):  # picklable with its two fields
        return (VideoReadError, (self.path, self.reason))


class VideoInfo(NamedTuple):
    n_frames: int
    fps: float
    duration_s: float
    width: int
    height: int


# ---------------------------------------------------------------- pure helpers


def windows(duration_s: float, length_s: float, stride_s: float, start_s: float = 0.0) -> list[Span]:
    """Fixed windows [s, s + length) every `stride` seconds; a tail shorter than `length` is dropped."""
    if length_s <= 0 or stride_s <= 0:
        raise ValueError(f"window length and stride must be > 0, got {length_s}, {stride_s}")
    n = int(math.floor((duration_s - start_s - length_s) / stride_s + 1e-6)) + 1
    # Rounded to the microsecond so spans built here compare equal to spans read from files.
    return [(round(start_s + k * stride_s, 6), round(start_s + k * stride_s + length_s, 6)) for k in range(max(n, 0))]


def sample_indices(start_s: float, end_s: float, n_frames: int, fps: float, total_frames: int) -> np.ndarray:
    """Indices of `n_frames` frames at the centres of equal segments of [start, end). Shape (n,)."""
    if end_s <= start_s or n_frames < 1:
        raise ValueError(f"need end > start and n_frames >= 1, got [{start_s}, {end_s}), n={n_frames}")
    t = start_s + (np.arange(n_frames) + 0.5) * (end_s - start_s) / n_frames  # (n,) seconds
    idx = np.floor(t * fps + 1e-6).astype(np.int64)  # (n,)
    # One frame of slack at the end: headers and rounding disagree by a frame now and then.
    if total_frames > 0 and idx.max() > total_frames:
        raise _SpanError(f"span [{start_s:g}, {end_s:g}) s needs frame {idx.max()} but the video has {total_frames} frames ({total_frames / fps:.3f} s)")
    return np.clip(idx, 0, max(total_frames - 1, 0))


def resize_plan(width: int, height: int, size: int, crop: bool = True) -> tuple[int, int, int, int]:
    """(decode_w, decode_h, x0, y0): decode at this size, then take [y0:y0+size, x0:x0+size]."""
    if not crop:
        return size, size, 0, 0
    scale = size / min(width, height)
    w, h = max(size, round(width * scale)), max(size, round(height * scale))
    return w, h, (w - size) // 2, (h - size) // 2


class _SpanError(ValueError):
    """A span that lies outside the video: reported as a read error of that file."""


# ---------------------------------------------------------------- probing


def probe(path: str | os.PathLike) -> VideoInfo:
    """(n_frames, fps, duration_s, width, height) from the container header (PyAV; decord if absent)."""
    path = str(path)
    _check_exists(path)
    try:
        import av  # noqa: F401
    except ImportError:
        return _probe_decord(path)
    return _probe_pyav(path)


def _probe_pyav(path: str) -> VideoInfo:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream")
            s = container.streams.video[0]
            fps = float(s.average_rate or s.guessed_rate or s.base_rate or 0)
            if fps <= 0:
                raise VideoReadError(path, "no frame rate in the header")
            if s.duration:
                duration = float(s.duration * s.time_base)
            elif s.frames:
                duration = s.frames / fps
            else:
                duration = (container.duration or 0) / 1e6
            n = int(s.frames) or int(round(duration * fps))
            return VideoInfo(n, fps, duration, int(s.codec_context.width), int(s.codec_context.height))
    except VideoReadError:
        raise
    except Exception as e:  # av raises many error types for bad input
        raise VideoReadError(path, f"cannot open: {_short(e)}") from None


def _probe_decord(path: str) -> VideoInfo:
    import decord

    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0))
        n, fps = len(vr), float(vr.get_avg_fps())
        h, w = vr[0].shape[:2]
        del vr
    except Exception as e:
        raise VideoReadError(path, f"cannot open: {_short(e)}") from None
    return VideoInfo(n, fps, n / fps, int(w), int(h))


def available_backends() -> list[str]:
    """Backends importable in this environment, in order of preference."""
    out = []
    for name, module in (("decord", "decord"), ("pyav", "av")):
        try:
            __import__(module)
            out.append(name)
        except Exception:
            pass
    return out


# ---------------------------------------------------------------- decoding (runs in the worker)


def decode_spans(path: str, spans: Sequence[Span], n_frames: int, size: int, backend: str = "decord",
                 crop: bool = True, partial: bool = False) -> list[np.ndarray | str]:
    """Decode in this process: one (n_frames, size, size, 3) uint8 array per span. No timeout.

    partial: a file that stops decoding part way (truncated, damaged) still gives every span whose
    frames all decoded; each other span is the reason it failed (a str) instead of an array.
    """
    path = str(path)
    _check_args(spans, n_frames, size, backend)
    _check_exists(path)
    if backend == "decord":
        try:
            import decord  # noqa: F401
        except Exception:
            backend = "pyav"  # decord is optional; PyAV always installs
    info = probe(path)
    try:
        per_span = [sample_indices(s, e, n_frames, info.fps, info.n_frames) for s, e in spans]
    except _SpanError as e:
        raise VideoReadError(path, str(e)) from None
    plan = resize_plan(info.width, info.height, size, crop)
    wanted = np.unique(np.concatenate(per_span))  # (k,) sorted
    try:
        frames, reason = _decode_with_fallback(path, wanted, plan[:2], backend), None  # {index: (h, w, 3)}
    except VideoReadError as e:
        if not partial:
            raise
        frames, reason = _decode_pyav(path, wanted, plan[:2], partial=True), e.reason
    x0, y0 = plan[2], plan[3]
    out: list[np.ndarray | str] = []
    for (s, e), idx in zip(spans, per_span):
        lost = [int(i) for i in idx if int(i) not in frames]
        if lost:
            out.append(f"span [{s:g}, {e:g}) s: frame {lost[0]} is not decodable ({reason})")
        else:
            out.append(np.stack([frames[int(i)][y0:y0 + size, x0:x0 + size] for i in idx]))
    return out


def _decode_with_fallback(path: str, wanted: np.ndarray, wh: tuple[int, int], backend: str) -> dict[int, np.ndarray]:
    """decord first when asked; PyAV when decord fails (decord's resizer rejects some sizes)."""
    if backend != "decord":
        return _decode_pyav(path, wanted, wh)
    try:
        return _decode_decord(path, wanted, wh)
    except VideoReadError as first:
        try:
            return _decode_pyav(path, wanted, wh)
        except VideoReadError as second:
            raise VideoReadError(path, f"{first.reason}; PyAV: {second.reason}") from None


def _decode_decord(path: str, wanted: np.ndarray, wh: tuple[int, int]) -> dict[int, np.ndarray]:
    import decord

    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), width=wh[0], height=wh[1])  # fresh per file
        n = len(vr)
        if wanted.max() > n:
            raise VideoReadError(path, f"truncated: frame {wanted.max()} wanted, decord finds {n} frames")
        # The header and decord's index may disagree by one frame at the very end.
        batch = vr.get_batch(np.minimum(wanted, n - 1).tolist()).asnumpy()  # (k, h, w, 3) uint8
        del vr
    except VideoReadError:
        raise
    except Exception as e:
        raise VideoReadError(path, f"decord failed: {_short(e)}") from None
    if batch.shape[0] != len(wanted):
        raise VideoReadError(path, f"decord returned {batch.shape[0]} of {len(wanted)} frames")
    return {int(i): batch[j] for j, i in enumerate(wanted)}


def _decode_pyav(path: str, wanted: np.ndarray, wh: tuple[int, int], partial: bool = False) -> dict[int, np.ndarray]:
    """partial: return the frames that decoded instead of raising when the file stops early."""
    import av

    want = set(int(i) for i in wanted)
    last = max(want)
    out: dict[int, np.ndarray] = {}
    i = -1
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            # Counting decoded frames (not pts) matches decord's indexing and needs no seek.
            for i, frame in enumerate(container.decode(stream)):
                if i in want:
                    out[i] = frame.reformat(width=wh[0], height=wh[1], format="rgb24").to_ndarray()
                if i >= last:
                    break
    except Exception as e:
        if len(out) < len(want) and not partial:
            raise VideoReadError(path, f"truncated or damaged: decoding stopped after frame {i} ({_short(e)})") from None
    missing = sorted(want - set(out))
    if missing and out and missing[-1] == i + 1 and len(missing) == 1:
        out.update({m: out[max(out)] for m in missing})  # one frame short at the very end: repeat the last
    elif missing and not partial:
        raise VideoReadError(path, f"truncated: frame {missing[0]} wanted, only {i + 1} frames decodable")
    return out


# ---------------------------------------------------------------- the worker process


def _worker_main(conn_in, conn_out) -> None:
    """Loop in the worker: receive a task dict, answer ("ok", frames) or ("err", reason)."""
    conn_out.send(("ready", os.getpid()))
    while True:
        try:
            task = conn_in.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            reply = ("ok", decode_spans(**task))
        except VideoReadError as e:
            reply = ("err", e.reason)
        except Exception as e:
            reply = ("err", f"{type(e).__name__}: {_short(e)}")
        conn_out.send(reply)


class FrameReader:
    """One decode worker process with per-file timeouts. Thread-safe; calls are serialised.

    The worker is a fresh interpreter (`python -m cineneuron.sources.video`), the equivalent of a
    multiprocessing `spawn` start that also never re-imports the caller's `__main__`, so scripts
    without an `if __name__ == "__main__"` guard work. For parallel decoding make one reader per
    thread. `max_files` recycles the worker to bound decord's leaks.
    """

    def __init__(self, max_files: int = 200, start_timeout_s: float = 120.0):
        self.max_files = max_files
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._send = self._recv = None
        self._served = 0
        self._lock = threading.Lock()
        # The worker's stderr (libav/decord log lines such as "partial file") goes here, not to the
        # user's terminal; its tail joins the reason a file failed, so it lands in the job record.
        self._log = None
        self._log_pos = 0

    def read(self, path: str | os.PathLike, spans: Sequence[Span], n_frames: int, size: int,
             backend: str = "decord", timeout_s: float = 60.0, crop: bool = True,
             partial: bool = False) -> list[np.ndarray | str]:
        path = str(path)
        _check_args(spans, n_frames, size, backend)
        _check_exists(path)
        task = dict(path=path, spans=[(float(s), float(e)) for s, e in spans], n_frames=int(n_frames),
                    size=int(size), backend=backend, crop=bool(crop), partial=bool(partial))
        with self._lock:
            self._start()
            try:
                self._send.send(task)
                if not self._recv.poll(timeout_s):
                    self._kill()
                    raise VideoReadError(path, f"timed out after {timeout_s:g} s")
                status, payload = self._recv.recv()
            except (EOFError, OSError):
                code = self._kill()
                raise VideoReadError(path, _with_log(f"decoder process died (exit code {code})", self._native_log())) from None
            native = self._native_log()
            self._served += 1
            if self._served >= self.max_files:
                self._stop()
        if status != "ok":
            raise VideoReadError(path, _with_log(payload, native))
        return [_with_log(f, native) if isinstance(f, str) else f for f in payload]

    def _native_log(self) -> str:
        """What the worker's native libraries logged since the last call, as one short line."""
        if self._log is None:
            return ""
        self._log.seek(self._log_pos)
        text = self._log.read().decode(errors="replace")
        self._log_pos = self._log.tell()
        lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
        return "; ".join(dict.fromkeys(lines[-3:]))[:300]

    def close(self) -> None:
        with self._lock:
            self._stop()
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._kill()
        task_r, task_w = os.pipe()  # parent -> worker
        reply_r, reply_w = os.pipe()  # worker -> parent
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])  # so the worker imports this same package
        env["PYTHONPATH"] = os.pathsep.join([pkg_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        cmd = [sys.executable, "-m", "cineneuron.sources.video", "--worker", str(task_r), str(reply_w)]
        if self._log is None:
            import tempfile

            self._log = tempfile.TemporaryFile()
        self._log.seek(0, os.SEEK_END)
        self._log_pos = self._log.tell()
        try:
            self._proc = subprocess.Popen(cmd, pass_fds=(task_r, reply_w), env=env, stdin=subprocess.DEVNULL,
                                          stderr=self._log, close_fds=True)
        finally:
            os.close(task_r)
            os.close(reply_w)
        self._send = Connection(task_w, readable=False)
        self._recv = Connection(reply_r, writable=False)
        self._served = 0
        try:
            ok = self._recv.poll(self.start_timeout_s)
            if ok:
                self._recv.recv()  # ("ready", pid)
        except (EOFError, OSError):
            ok = False
        if not ok:
            code = self._kill()
            log = self._native_log()
            raise CNError(f"the video decode worker did not start (exit code {code}){': ' + log if log else ''}; run `{sys.executable} -m cineneuron.sources.video --check` to see why")

    def _stop(self) -> None:
        if self._proc is None:
            return
        try:
            self._send.send(None)
            self._proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self._kill()

    def _kill(self) -> int | None:
        proc = self._proc
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        self._proc = self._send = self._recv = None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        return proc.wait()


_default_reader: FrameReader | None = None
_default_lock = threading.Lock()


def _reader() -> FrameReader:
    global _default_reader
    with _default_lock:
        if _default_reader is None:
            _default_reader = FrameReader()
            atexit.register(_default_reader.close)
        return _default_reader


def read_clip_frames(path: str | os.PathLike, spans: Sequence[Span], n_frames: int, size: int,
                     backend: str = "decord", timeout_s: float = 60.0, crop: bool = True,
                     isolate: bool = True, partial: bool = False) -> list[np.ndarray | str]:
    """Frames of each span of one video: a list (one per span) of (n_frames, size, size, 3) uint8.

    Raises VideoReadError(path, reason) for a missing, unreadable, truncated or hanging file (the
    timeout is per call, i.e. per file). `isolate=False` decodes in this process, without timeout.
    Falls back to PyAV when decord is not importable. partial: see `decode_spans` (failed spans are
    their reason, a str, and the spans that decoded are kept).
    """
    if not isolate or os.name == "nt":
        return decode_spans(path, spans, n_frames, size, backend, crop, partial)
    return _reader().read(path, spans, n_frames, size, backend, timeout_s, crop, partial)


# ---------------------------------------------------------------- checks


def _check_args(spans: Sequence[Span], n_frames: int, size: int, backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if not spans:
        raise ValueError("spans is empty")
    if n_frames < 1 or size < 1:
        raise ValueError(f"n_frames and size must be >= 1, got {n_frames}, {size}")
    for s, e in spans:
        if not (0 <= s < e):
            raise ValueError(f"bad span [{s}, {e}): need 0 <= start < end")


def _check_exists(path: str) -> None:
    if not os.path.exists(path):  # exists(), not is_file(): pipes and devices are the decoder's problem
        raise VideoReadError(path, "file not found")
    if os.path.isdir(path):
        raise VideoReadError(path, "is a directory")


def _with_log(reason: str, native: str) -> str:
    # libav prefixes its lines with the context's address ("[mov,mp4,... @ 0x55...]"): drop it, so a
    # failure reads the same in every process (a Ray worker's and a local ingest's records agree).
    native = re.sub(r" @ 0x[0-9a-fA-F]+\]", "]", native)
    return f"{reason} (decoder log: {native})" if native else reason


def _short(e: BaseException, n: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: (Error: )?", "", text)  # decord's log prefix
    return text[:n]


__all__ = ["BACKENDS", "FrameReader", "VideoInfo", "VideoReadError", "available_backends", "decode_spans",
           "probe", "read_clip_frames", "resize_plan", "sample_indices", "windows"]


def _main(argv: list[str]) -> int:
    """`python -m cineneuron.sources.video --worker R W` (the worker) or `--check` (a self-test)."""
    if argv[:1] == ["--worker"] and len(argv) == 3:
        os.dup2(2, 1)  # stray prints from native decoders must not reach the parent's reply pipe
        _worker_main(Connection(int(argv[1]), writable=False), Connection(int(argv[2]), readable=False))
        return 0
    if argv[:1] == ["--check"]:
        print("backends:", ", ".join(available_backends()) or "none")
        return 0
    print("usage: python -m cineneuron.sources.video --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
