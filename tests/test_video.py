"""Video reading: both backends on real mp4s, sampling, geometry, and per-file failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cineneuron.errors import CNError
from cineneuron.sources.video import (FrameReader, VideoReadError, decode_spans, probe, read_clip_frames,
                                      resize_plan, sample_indices, windows)

DATA = "/work/shared/data/videos"
BIKES, BUNNY = f"{DATA}/bikes.mp4", f"{DATA}/bigbuckbunny.mp4"
needs_data = pytest.mark.skipif(not os.path.exists(BIKES), reason="sample videos not present")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    data = open(BIKES, "rb").read()
    (d / "half.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end: cut off
    (d / "text.mp4").write_text("this is not a video\n" * 20)
    # The same video with the index first (faststart), then cut: opens, then stops decoding mid-way.
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", BIKES, "-c", "copy",
                    "-movflags", "+faststart", str(d / "fs.mp4")], check=True)
    fs = (d / "fs.mp4").read_bytes()
    (d / "fs_half.mp4").write_bytes(fs[: len(fs) // 2])
    return d


# ------------------------------------------------------------------ pure helpers


def test_windows_drop_the_short_tail():
    assert windows(10.0, 2.0, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0), (8.0, 10.0)]
    assert len(windows(9.9, 2.0, 2.0)) == 4
    assert windows(5.0, 2.0, 1.0) == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0)]
    assert windows(1.5, 2.0, 2.0) == []
    assert windows(480.0, 2.0, 2.0)[-1] == (478.0, 480.0)  # no float drift over a cc2017 run


def test_sample_indices_are_segment_centres():
    # [0, 2) s at 25 fps, 4 frames: centres 0.25, 0.75, 1.25, 1.75 s -> frames 6, 18, 31, 43
    assert sample_indices(0.0, 2.0, 4, 25.0, 250).tolist() == [6, 18, 31, 43]
    idx = sample_indices(2.0, 4.0, 8, 25.0, 250)
    assert np.all(np.diff(idx) > 0) and idx[0] >= 50 and idx[-1] < 100
    assert np.ptp(np.diff(idx)) <= 1  # uniform up to rounding
    assert sample_indices(8.0, 10.0, 16, 25.0, 250).max() == 248
    with pytest.raises(ValueError):
        sample_indices(9.0, 11.0, 4, 25.0, 250)  # past the end


def test_resize_plan_centre_crop_and_squash():
    assert resize_plan(640, 272, 64) == (151, 64, 43, 0)
    assert resize_plan(272, 640, 64) == (64, 151, 0, 43)
    assert resize_plan(640, 272, 64, crop=False) == (64, 64, 0, 0)


# ------------------------------------------------------------------ decoding


@needs_data
def test_probe_real_videos():
    assert probe(BIKES) == (250, 25.0, 10.0, 640, 272)
    n, fps, dur, w, h = probe(BUNNY)
    assert (n, fps, w, h) == (132, 25.0, 1280, 720) and abs(dur - 5.28) < 1e-6


@needs_data
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_shapes_and_counts(backend):
    spans = [(0.0, 2.0), (3.0, 5.0), (8.0, 10.0)]
    out = decode_spans(BIKES, spans, 7, 48, backend)
    assert len(out) == 3 and all(a.shape == (7, 48, 48, 3) and a.dtype == np.uint8 for a in out)
    (bunny,) = decode_spans(BUNNY, [(0.0, 5.28)], 9, 40, backend)
    assert bunny.shape == (9, 40, 40, 3)


@needs_data
def test_backends_agree():
    spans = [(0.0, 2.0), (6.0, 8.0)]
    for path, size in ((BIKES, 48), (BUNNY, 64)):
        a = decode_spans(path, spans[:1] if path == BUNNY else spans, 8, size, "decord")
        b = decode_spans(path, spans[:1] if path == BUNNY else spans, 8, size, "pyav")
        for x, y in zip(a, b):
            assert np.abs(x.astype(np.int16) - y).mean() < 2.0  # same frames, same scaler


@needs_data
def test_frames_are_the_sampled_ones():
    """Each returned frame is the full-decode frame at `sample_indices`, resized and centre-cropped."""
    import av

    w, h, x0, y0 = resize_plan(640, 272, 32)
    with av.open(BIKES) as c:
        full = np.stack([f.reformat(width=w, height=h, format="rgb24").to_ndarray() for f in c.decode(video=0)])
    (got,) = decode_spans(BIKES, [(4.0, 6.0)], 5, 32, "pyav")
    want = full[sample_indices(4.0, 6.0, 5, 25.0, 250)][:, y0:y0 + 32, x0:x0 + 32]
    assert np.array_equal(got, want)
    # Frames of a moving scene differ: a constant index bug would not pass.
    assert np.abs(got[0].astype(np.int16) - got[-1]).mean() > 1.0


@needs_data
def test_squash_keeps_the_whole_field_of_view():
    crop = decode_spans(BIKES, [(0.0, 2.0)], 2, 32, "pyav")[0]
    squash = decode_spans(BIKES, [(0.0, 2.0)], 2, 32, "pyav", crop=False)[0]
    assert crop.shape == squash.shape == (2, 32, 32, 3) and not np.array_equal(crop, squash)


@needs_data
def test_worker_matches_in_process_and_falls_back(monkeypatch):
    spans = [(1.0, 3.0)]
    direct = decode_spans(BIKES, spans, 4, 32, "pyav")
    isolated = read_clip_frames(BIKES, spans, 4, 32, backend="pyav")
    assert np.array_equal(direct[0], isolated[0])
    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` now fails
    fallback = decode_spans(BIKES, spans, 4, 32, "decord")
    assert np.array_equal(fallback[0], direct[0])


# ------------------------------------------------------------------ failures


@needs_data
@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("name", ["half.mp4", "fs_half.mp4", "text.mp4"])
def test_damaged_files_raise_read_errors(bad_files, backend, name):
    path = bad_files / name
    with pytest.raises(VideoReadError) as err:
        read_clip_frames(path, [(0.0, 2.0), (8.0, 10.0)], 4, 32, backend=backend)
    assert err.value.path == str(path) and err.value.reason
    assert isinstance(err.value, CNError) and "\n" not in str(err.value)


@needs_data
def test_missing_file_and_span_past_the_end(tmp_path):
    with pytest.raises(VideoReadError, match="not found"):
        read_clip_frames(tmp_path / "nope.mp4", [(0.0, 2.0)], 4, 32)
    with pytest.raises(VideoReadError, match="needs frame"):
        read_clip_frames(BIKES, [(9.0, 11.0)], 4, 32)
    with pytest.raises(ValueError):
        read_clip_frames(BIKES, [(2.0, 1.0)], 4, 32)


@needs_data
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to hang the decoder")
def test_timeout_fails_that_file_only(tmp_path):
    fifo = tmp_path / "hangs.mp4"
    os.mkfifo(fifo)  # opening it for reading blocks forever: a decoder that hangs
    with FrameReader() as reader:
        ok = reader.read(BIKES, [(0.0, 2.0)], 4, 32, timeout_s=60)
        with pytest.raises(VideoReadError, match="timed out"):
            reader.read(fifo, [(0.0, 2.0)], 4, 32, timeout_s=1.5)
        again = reader.read(BIKES, [(0.0, 2.0)], 4, 32, timeout_s=60)  # a fresh worker serves the next file
    assert np.array_equal(ok[0], again[0])


@needs_data
def test_worker_recycles_after_max_files(tmp_path):
    copy = tmp_path / "copy.mp4"
    shutil.copy(BIKES, copy)
    with FrameReader(max_files=1) as reader:
        a = reader.read(copy, [(0.0, 2.0)], 2, 16)
        b = reader.read(copy, [(0.0, 2.0)], 2, 16)
    assert np.array_equal(a[0], b[0])


@needs_data
def test_one_frame_of_slack_at_the_end():
    """A span ending a hair after the video gets the last frame, not an error (both backends)."""
    last = [decode_spans(BIKES, [(9.96, 10.04)], 1, 16, b)[0] for b in ("decord", "pyav")]
    ref = decode_spans(BIKES, [(9.96, 9.999)], 1, 16, "pyav")[0]  # frame 249, the last
    for x in last:
        assert np.abs(x.astype(np.int16) - ref).mean() < 2.0


@needs_data
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to hold the decoder")
def test_a_crashing_decoder_fails_that_file_only(tmp_path):
    import signal
    import threading

    fifo = tmp_path / "crash.mp4"
    os.mkfifo(fifo)
    with FrameReader() as reader:
        reader.read(BIKES, [(0.0, 2.0)], 2, 16)  # worker up
        pid = reader._proc.pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()  # the decoder "segfaults"
        with pytest.raises(VideoReadError, match="died"):
            reader.read(fifo, [(0.0, 2.0)], 2, 16, timeout_s=30)
        assert reader.read(BIKES, [(0.0, 2.0)], 2, 16)[0].shape == (2, 16, 16, 3)
