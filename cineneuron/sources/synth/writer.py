"""Writes a synthetic world in the cc2017 layout.

    ROOT/stimuli/seg{1..N}.mp4, ROOT/stimuli/test{1..M}.mp4
    ROOT/subject{k}/fmri/training_fmri.mat   MATLAB v5 (scipy.io.savemat)
        struct `fmri` with fields data1, data2 (repeat 1 and 2), each float32
        (n_voxels, n_volumes, n_train_segments) -- the real file is 59412 x 240 x 18.
    ROOT/subject{k}/fmri/testing_fmri.mat    MATLAB v7.3 = HDF5 (h5py) with a 512-byte MATLAB
        header in the userblock; group `fmritest` with datasets test{1..M}, each logically
        (n_voxels, n_volumes, 10 repeats) in MATLAB order. MATLAB v7.3 stores arrays column-major,
        so the HDF5 dataset shape as h5py sees it is the reverse: (10, n_volumes, n_voxels),
        i.e. `f["fmritest/test1"][rep, vol, voxel]`. Readers that transpose (mat73, hdf5storage,
        MATLAB itself) see (n_voxels, n_volumes, 10).
    ROOT/truth/subject{k}.npz, ROOT/truth/stimulus.npz   ground truth for tests
    ROOT/truth/attributes.json                           each kind's ventral object-attribute vector
    ROOT/annotations.json                                 clips, captions, labels, factors

Both .mat files are byte-identical for the same inputs: the v5 header's creation date and the
HDF5 object times are fixed (track_times=False), so a seed fully determines the bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

MAT5_TEXT = "MATLAB 5.0 MAT-file, Platform: posix, Created by: cineneuron.sources.synth"
MAT73_TEXT = "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 HDF5 schema 1.00 ."


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".part")


class VideoWriter:
    """mp4 (H.264, yuv420p) written frame by frame with imageio-ffmpeg; frame sides must be even."""

    def __init__(self, path: Path, fps: int):
        import imageio.v2 as imageio

        self.path = Path(path)
        self._writer = imageio.get_writer(
            str(self.path), format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=None,
            pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
            ffmpeg_params=["-crf", "18", "-preset", "veryfast", "-threads", "1"],
        )

    def append(self, frames: np.ndarray) -> None:
        for frame in frames:  # (S, S, 3) uint8
            self._writer.append_data(frame)

    def close(self) -> None:
        self._writer.close()


def write_training_mat(path: Path, data1: np.ndarray, data2: np.ndarray) -> None:
    """data1/data2: (n_voxels, n_volumes, n_segments) float32 -> struct fmri.data1/.data2 (v5)."""
    from scipy.io import savemat

    path = Path(path)
    tmp = _tmp(path)
    savemat(tmp, {"fmri": {"data1": np.asarray(data1, np.float32), "data2": np.asarray(data2, np.float32)}},
            format="5", do_compression=False, oned_as="column")
    with open(tmp, "r+b") as fh:  # replace the header text, which holds the time of writing
        fh.write(MAT5_TEXT.ljust(116).encode("ascii"))
    os.replace(tmp, path)


def _mat73_header() -> bytes:
    """The 128-byte MATLAB header that heads a v7.3 file's 512-byte userblock."""
    text = MAT73_TEXT.ljust(116).encode("ascii")
    return text + b"\x00" * 8 + b"\x00\x02" + b"IM"  # subsystem offset, version 0x0200, endian


def write_testing_mat(path: Path, tests: dict[str, np.ndarray]) -> None:
    """tests: name -> (n_repeats, n_volumes, n_voxels) float32, the HDF5 (reversed) order."""
    path = Path(path)
    tmp = _tmp(path)
    with h5py.File(tmp, "w", userblock_size=512, libver="earliest") as f:
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)
        h5py.h5g.create(f.id, b"fmritest", gcpl=gcpl)
        group = f["fmritest"]
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        fields = np.empty(len(tests), dtype=object)
        for i, name in enumerate(tests):
            fields[i] = np.array(list(name), dtype="S1")
        group.attrs.create("MATLAB_fields", fields, dtype=h5py.vlen_dtype(np.dtype("S1")))
        for name, arr in tests.items():
            ds = group.create_dataset(name, data=np.asarray(arr, np.float32), track_times=False)
            ds.attrs["MATLAB_class"] = np.bytes_("single")
    with open(tmp, "r+b") as fh:
        fh.write(_mat73_header())
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    path = Path(path)
    tmp = _tmp(path)
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = Path(path)
    tmp = _tmp(path)
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)


def clear_outputs(root: Path) -> None:
    """Remove files a previous run wrote here (only names this writer makes), so a smaller world
    written over a larger one leaves no stale segments or subjects behind."""
    root = Path(root)
    patterns = ["annotations.json", "stimuli/seg*.mp4", "stimuli/test*.mp4", "truth/subject*.npz",
                "truth/stimulus.npz", "truth/attributes.json", "subject*/fmri/training_fmri.mat", "subject*/fmri/testing_fmri.mat"]
    for pattern in patterns:
        for p in root.glob(pattern):
            if p.is_file():
                p.unlink()
