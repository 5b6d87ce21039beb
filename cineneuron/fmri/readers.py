"""File readers for fMRI: CIFTI-2 dense time series, MATLAB .mat v5 and v7.3 (HDF5).

Every reader returns arrays in (time, voxels) order, whatever the file keeps, so the rest of the
package never has to think about MATLAB's column-major layout. Heavy libraries (nibabel, h5py,
scipy.io) are imported inside the functions so importing the package stays cheap.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from cineneuron.errors import CNError

CORTEX_STRUCTURES = ("CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 puts its signature at 0 or after a user block of 512 · 2^k bytes; MATLAB v7.3 uses 512.
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)


def read_cifti_cortex(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Read the cortical grayordinates of a CIFTI-2 dtseries: ((n_vol, n_cortex) float32, step_s).

    Cortex = the CORTEX_LEFT and CORTEX_RIGHT models of the brain-model axis, in axis order;
    subcortical volume models are left out. step_s is the series step when its unit is seconds.
    """
    import nibabel as nib
    from nibabel import cifti2

    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a bad file
        raise CNError(f"cannot read CIFTI file {path}: {exc}") from exc
    if not isinstance(img, cifti2.Cifti2Image):
        raise CNError(f"{path} is not a CIFTI-2 image; expected a .dtseries.nii file")
    axes = [img.header.get_axis(i) for i in range(img.ndim)]
    bm_dim = next((i for i, ax in enumerate(axes) if isinstance(ax, cifti2.BrainModelAxis)), None)
    series = next((ax for ax in axes if isinstance(ax, cifti2.SeriesAxis)), None)
    if bm_dim is None or img.ndim != 2:
        raise CNError(f"{path} has no brain-model axis; expected a 2-D dense time series (dtseries)")
    slices = [slc for name, slc, _ in axes[bm_dim].iter_structures() if name in CORTEX_STRUCTURES]
    if not slices:
        raise CNError(f"{path}: its brain-model axis has no CORTEX_LEFT/CORTEX_RIGHT surface models")
    if bm_dim == 1:
        parts = [np.asarray(img.dataobj[:, s], dtype=np.float32) for s in slices]  # (n_vol, n_s)
    else:
        parts = [np.asarray(img.dataobj[s, :], dtype=np.float32).T for s in slices]
    step = None
    if series is not None and str(series.unit).upper() == "SECOND":
        step = float(series.step)
    return np.concatenate(parts, axis=1), step  # (n_vol, n_cortex)


def is_hdf5(path: str | Path) -> bool:
    """True when the file carries the HDF5 signature (MATLAB v7.3), judged by content, not name."""
    with open(path, "rb") as fh:
        head = fh.read(max(_HDF5_OFFSETS) + len(HDF5_SIGNATURE))
    return any(head[o : o + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for o in _HDF5_OFFSETS)


class MatRuns:
    """A 3-D MATLAB array (n_voxels, n_volumes, n_runs), read one run at a time as (n_vol, n_vox).

    MATLAB drops trailing singleton dimensions, so a 2-D array is one run.
    """

    def __init__(self, array, matlab_shape: tuple[int, ...], hdf5: bool, where: str):
        if len(matlab_shape) not in (2, 3):
            raise CNError(f"{where} has shape {matlab_shape}; expected (n_voxels, n_volumes[, n_runs])")
        self._array = array
        self._hdf5 = hdf5
        self.where = where
        self.matlab_shape = tuple(int(d) for d in matlab_shape)

    @property
    def n_voxels(self) -> int:
        return self.matlab_shape[0]

    @property
    def n_runs(self) -> int:
        return self.matlab_shape[2] if len(self.matlab_shape) == 3 else 1

    def run(self, k: int) -> np.ndarray:
        """Run k as (n_volumes, n_voxels) float64."""
        if not 0 <= k < self.n_runs:
            raise IndexError(k)
        if self._hdf5:
            # h5py sees MATLAB's array with reversed axes: (n_runs, n_vol, n_vox) or (n_vol, n_vox).
            data = self._array[k] if len(self.matlab_shape) == 3 else self._array[()]
            return np.asarray(data, dtype=np.float64)
        data = self._array[:, :, k] if self._array.ndim == 3 else self._array  # (n_vox, n_vol)
        return np.asarray(data, dtype=np.float64).T


class MatFile:
    """Fields of the structs in a .mat file, whichever version wrote it."""

    def __init__(self, path: Path, content, hdf5: bool):
        self.path = path
        self._content = content
        self.hdf5 = hdf5

    def fields(self, struct: str) -> list[str]:
        if self.hdf5:
            grp = self._content.get(struct)
            if grp is None or not hasattr(grp, "keys"):
                raise CNError(f"{self.path} has no struct {struct!r}")
            return [k for k in grp.keys() if not k.startswith("#")]
        rec = self._content.get(struct)
        if rec is None or getattr(rec, "dtype", None) is None or rec.dtype.names is None:
            raise CNError(f"{self.path} has no struct {struct!r}")
        return list(rec.dtype.names)

    def runs(self, struct: str, field: str) -> MatRuns:
        if field not in self.fields(struct):
            raise CNError(f"{self.path}: struct {struct!r} has no field {field!r}")
        where = f"{self.path}:{struct}.{field}"
        if self.hdf5:
            ds = self._content[struct][field]
            return MatRuns(ds, tuple(reversed(ds.shape)), hdf5=True, where=where)
        arr = self._content[struct][field][0, 0]
        return MatRuns(arr, arr.shape, hdf5=False, where=where)


@contextmanager
def open_mat(path: str | Path) -> Iterator[MatFile]:
    """Open a .mat file: v7.3 (HDF5, detected by its signature) through h5py, else scipy.io."""
    path = Path(path)
    if not path.is_file():
        raise CNError(f"missing .mat file {path}")
    if is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as fh:
            yield MatFile(path, fh, hdf5=True)
        return
    from scipy.io import loadmat

    try:
        content = loadmat(path, squeeze_me=False, struct_as_record=True)
    except Exception as exc:
        raise CNError(f"cannot read {path} as a MATLAB v5 or v7.3 file: {exc}") from exc
    yield MatFile(path, content, hdf5=False)
