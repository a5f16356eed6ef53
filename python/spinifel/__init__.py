"""spinifel: numpy in, numpy out access to libspinifel (single-particle imaging, M-TIP).

A thin ctypes binding over the C library (libspinifel.so): every computation is the
library's; this package checks and converts arrays, and turns the library's error codes
into spinifel.Error with its message. The library is found through $SPINIFEL_LIB, else
the repository's build/libspinifel.so, else the system's library path.

    PYTHONPATH=python /usr/bin/python3 -c "import spinifel; help(spinifel)"

Conventions (docs/method.md): scattering vectors s in 1/m, lengths and voxels in
Angstrom, angles in degrees, quaternions (w, x, y, z). Volumes are numpy arrays
(M, M, M) indexed [z, y, x] (x fastest, as in C and the MRC files), centred at (M-1)/2;
images are (N, ny, nx) with pixel (row, column) = flat pixel row * nx + column.

NUFFT          nufft_type1, nufft_type2, Plan, nufft_direct
data           simulate, read_dataset, write_dataset, read_mrc, write_mrc, reference_density
reconstruct    reconstruct, reconstruct_dataset, Result, read_results, default_options,
               orientation_error
validation     fsc, fsc_resolution, align, compare_maps, rotate_volume, autocorrelation,
               shell_correlation, align_intensity
"""
from ._lib import LIB_PATH, Error, check_layouts, strerror
from ._nufft import Plan, nufft_direct, nufft_type1, nufft_type2
from ._data import Dataset, read_dataset, read_mrc, reference_density, simulate, write_dataset, write_mrc
from ._reconstruct import (CLI_NAMES, Result, default_options, orientation_error, read_results, reconstruct,
                           reconstruct_dataset)
from ._validate import (Alignment, MapComparison, align, align_intensity, autocorrelation, compare_maps, fsc,
                        fsc_resolution, rotate_volume, shell_correlation)

__all__ = [
    "Error", "LIB_PATH", "strerror", "check_layouts",
    "Plan", "nufft_type1", "nufft_type2", "nufft_direct",
    "Dataset", "simulate", "read_dataset", "write_dataset", "read_mrc", "write_mrc", "reference_density",
    "reconstruct", "reconstruct_dataset", "read_results", "Result", "default_options", "orientation_error", "CLI_NAMES",
    "fsc", "fsc_resolution", "align", "Alignment", "compare_maps", "MapComparison", "rotate_volume",
    "autocorrelation", "shell_correlation", "align_intensity",
]
