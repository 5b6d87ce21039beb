"""Reading the fMRI a user queries with: .npy, .npz, .h5/.hdf5, .nii/.nii.gz.

The result is always (N, n_tr, n_voxels) in the subject's stored voxel space. An input in the
source space (its last axis as long as the subject's mask) is masked here, so a user can pass
either the selected voxels or the full grayordinate vector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cineneuron.errors import CNError

# Query fMRI is in the subject's stored space: per-voxel z-scores (stored as float16, so training
# never saw |x| > 65504). Beyond this bound an input is raw signal or corrupt, not a z-score, and
# the model would only turn it into NaN or saturated weights.
FMRI_ABS_MAX = 1000.0


def _read(path: Path) -> np.ndarray:
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "voxels" if "voxels" in z.files else (z.files[0] if len(z.files) == 1 else None)
                if key is None:
                    raise CNError(f"{path} holds {z.files}; name the array 'voxels'")
                return z[key]
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                names = [k for k in f if isinstance(f[k], h5py.Dataset)]
                key = "voxels" if "voxels" in f else (names[0] if len(names) == 1 else None)
                if key is None:
                    raise CNError(f"{path} holds datasets {names}; name the one to use 'voxels'")
                return f[key][()]
        if suffix in (".nii", ".nii.gz"):
            import nibabel as nib

            img = nib.load(str(path))
            data = np.asarray(img.get_fdata(dtype=np.float32))
            # CIFTI dtseries is (time, grayordinates); a NIfTI with singleton spatial axes is squeezed.
            return np.squeeze(data)
    except CNError:
        raise
    except Exception as e:  # corrupt or unreadable file
        raise CNError(f"cannot read fMRI file {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    raise CNError(f"fMRI file {path} must be .npy, .npz, .h5, .nii or .nii.gz")


def load_fmri_file(path: str | Path, n_tr: int, n_voxels: int, mask: np.ndarray | None = None) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise CNError(f"fMRI file {path} does not exist")
    return check_voxels(_read(path), n_tr, n_voxels, mask, what=str(path))


def check_voxels(x, n_tr: int, n_voxels: int, mask: np.ndarray | None = None, what: str = "the fMRI") -> np.ndarray:
    """Any accepted fMRI layout -> (N, n_tr, n_voxels) float32 in the subject's voxel space, or CNError."""
    x = _as_real(x, what)
    if mask is not None and x.shape[-1] == mask.size and mask.size != n_voxels:
        x = x[..., mask]  # source space -> the subject's selected voxels
    if x.shape[-1] != n_voxels:
        raise CNError(f"{what} has {x.shape[-1]} voxels on its last axis; subject expects {n_voxels} (or {mask.size if mask is not None else '?'} unmasked)")
    if x.ndim == 1:
        x = x[None, None]
    elif x.ndim == 2:
        x = x[:, None] if n_tr == 1 else x[None]
    if x.ndim != 3 or x.shape[1] != n_tr:
        raise CNError(f"{what} has shape {x.shape}; expected (N, {n_tr}, {n_voxels}), ({n_tr}, {n_voxels}) or ({n_voxels},)")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise CNError(f"{what} contains NaN or inf (first at sample {bad[0]}, TR {bad[1]}, voxel {bad[2]})")
    big = np.abs(x) > FMRI_ABS_MAX
    if big.any():
        bad = np.argwhere(big)[0]
        raise CNError(f"{what} has |value| {float(np.abs(x).max()):.3g} > {FMRI_ABS_MAX:g} (first at sample {bad[0]}, "
                      f"TR {bad[1]}, voxel {bad[2]}); query fMRI must be per-voxel z-scores as stored for the subject")
    return x


def _as_real(raw, path) -> np.ndarray:
    """The array as float32, refusing what a cast would silently mangle (complex, text, objects)."""
    a = np.asarray(raw)
    if a.dtype.kind == "c":
        raise CNError(f"{path} holds complex values ({a.dtype}); give the real-valued BOLD signal")
    if a.dtype.kind not in "biuf":
        raise CNError(f"{path} holds {a.dtype} values, not numbers; give a numeric array of voxels")
    if a.ndim == 0:
        raise CNError(f"{path} holds a single number; give (N, n_voxels) or (n_voxels,) voxel values")
    if a.size == 0:
        raise CNError(f"{path} holds no samples (shape {a.shape}); give at least one row of voxels")
    with np.errstate(over="raise"):
        try:
            return a.astype(np.float32)
        except FloatingPointError:
            raise CNError(f"{path} has values beyond float32 range; query fMRI must be z-scores") from None
