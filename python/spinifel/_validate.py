"""Validation: alignment, Fourier shell correlation, intensity shell correlation
(align.h, fsc.h, shellcorr.h), and `spinifel fsc`'s comparison of two maps."""
import ctypes
import math

import numpy as np

from . import _lib
from ._data import read_mrc, reference_density
from ._lib import Error, addr, check, lib


def _cube(v, name, M=None):
    """v as a C-contiguous float64 M^3 cube, M odd."""
    a = np.asarray(v)
    if a.ndim != 3 or not (a.shape[0] == a.shape[1] == a.shape[2]) or a.shape[0] % 2 == 0 or a.shape[0] < 3:
        raise Error("%s: a cube of odd size >= 3 expected, got shape %s" % (name, a.shape))
    if M is not None and a.shape[0] != M:
        raise Error("%s: %d^3, but the other volume is %d^3: the grids must match" % (name, a.shape[0], M))
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise Error("%s: real values expected, got dtype %s" % (name, a.dtype))
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise Error("%s: holds NaN or infinite values" % name)
    return a


def fsc(a, b):
    """Fourier shell correlation of two densities on the same centred M^3 grid (spf_fsc):
    (M - 1) / 2 + 1 values, shell 0 (the mean) to the Nyquist shell; shell k is the
    resolution M voxel / k."""
    a = _cube(a, "a")
    b = _cube(b, "b", a.shape[0])
    M = a.shape[0]
    out = np.empty((M - 1) // 2 + 1, dtype=np.float64)
    with _lib.planner_lock:
        rc = lib.spf_fsc(M, addr(a), addr(b), addr(out))
    check(rc, "fsc")
    return out


def fsc_resolution(curve, voxel_angstrom, threshold=0.5, outer=False):
    """Resolution (Angstrom when voxel is) where an FSC curve first falls below threshold,
    interpolated between shells; Nyquist, 2 voxel M / (M - 1), when it never does
    (spf_fsc_resolution). outer: where it falls below for good, past a weak shell's dip
    inside (spf_fsc_resolution_outer, the watch's)."""
    c = np.ascontiguousarray(curve, dtype=np.float64)
    if c.ndim != 1 or c.shape[0] < 2:
        raise Error("fsc_resolution: a curve of (M - 1) / 2 + 1 >= 2 shells expected, got shape %s" % (c.shape,))
    M = 2 * (c.shape[0] - 1) + 1
    f = lib.spf_fsc_resolution_outer if outer else lib.spf_fsc_resolution
    return f(M, addr(c), float(voxel_angstrom), float(threshold))


class Alignment:
    """align's result: correlation (Pearson, of ref and the aligned mov), quat (w x y z:
    the rotation R applied to mov about its centre of mass, taking it to ref's), inverted
    (1: the other hand, mov(-x)), shift (x, y, z voxels, circular, after the rotation),
    aligned (mov aligned, (M, M, M) [z, y, x])."""

    def __init__(self, r, aligned):
        self.correlation = r.correlation
        self.quat = np.array(r.quat[:], dtype=np.float64)
        self.inverted = r.inverted
        self.shift = tuple(r.shift[:])
        self.aligned = aligned

    @property
    def angle_deg(self):
        """The rotation's angle, degrees (as `spinifel fsc` prints it)."""
        return 2 * math.acos(min(1.0, abs(self.quat[0]))) * 180 / math.pi

    def __repr__(self):
        return "Alignment(correlation=%.4f, quat=%s, inverted=%d, shift=%s)" % (
            self.correlation, np.array2string(self.quat, precision=5), self.inverted, self.shift)


def align(ref, mov, n_rotations=4000, refine_steps=7, nthreads=0, start=None):
    """Align density mov to ref (same centred M^3 grid, [z, y, x]) over rotations of both
    hands and circular translations (spf_align); returns an Alignment. n_rotations: the
    coarse grid (4000: covering radius about 12 degrees). start: a rotation (w, x, y, z)
    found otherwise (align_intensity's), searched instead of the grid: only the hand and
    the shift are then found, refined by refine_steps local steps (0: none)."""
    ref = _cube(ref, "ref")
    mov = _cube(mov, "mov", ref.shape[0])
    M = ref.shape[0]
    o = _lib.AlignOptions()
    lib.spf_align_default_options(ctypes.byref(o))
    o.n_rotations, o.refine_steps, o.nthreads = int(n_rotations), int(refine_steps), int(nthreads)
    if start is not None:
        q = np.ascontiguousarray(start, dtype=np.float64)
        if q.shape != (4,) or not np.isfinite(q).all() or not np.linalg.norm(q) > 0:
            raise Error("align: start must be 4 finite numbers, not all 0 (w, x, y, z)")
        o.n_rotations = 0
        for k in range(4):
            o.start[k] = float(q[k])
    r = _lib.AlignResult()
    out = np.empty_like(ref)
    with _lib.planner_lock:
        rc = lib.spf_align(M, addr(ref), addr(mov), ctypes.byref(o), ctypes.byref(r), addr(out))
    check(rc, "align")
    return Alignment(r, out)


def rotate_volume(volume, quat, invert=False):
    """out(x) = in(R^T x) about the grid centre, trilinear, zero outside; invert: in(-x)
    first (spf_rotate_volume). volume (M, M, M) [z, y, x]; quat (w, x, y, z)."""
    v = _cube(volume, "volume")
    q = np.ascontiguousarray(quat, dtype=np.float64)
    if q.shape != (4,) or not np.isfinite(q).all() or not np.linalg.norm(q) > 0:
        raise Error("rotate_volume: quat must be 4 finite numbers, not all 0 (w, x, y, z)")
    out = np.empty_like(v)
    lib.spf_rotate_volume(v.shape[0], addr(v), addr(q), 1 if invert else 0, addr(out))
    return out


class MapComparison:
    """compare_maps's result: alignment (Alignment), fsc (curve per shell), resolution
    (list of Angstrom per shell, inf for shell 0), resolution_05 and resolution_0143
    (Angstrom), voxel_angstrom, M."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        return ("MapComparison(correlation=%.4f, inverted=%d, FSC 0.5 at %.2f A, 0.143 at %.2f A)"
                % (self.alignment.correlation, self.alignment.inverted, self.resolution_05, self.resolution_0143))


def compare_maps(a, b=None, voxel_angstrom=None, pdb=None, phantom=False, assembly=False, n_rotations=4000,
                 nthreads=0):
    """`spinifel fsc A B` / `spinifel fsc A --pdb FILE` / `--phantom` through the library:
    align B (a map, or the molecule's density on A's grid: reference_density) to A, then
    the FSC and the resolutions at 0.5 and 0.143.

    a, b: MRC paths or (M, M, M) arrays (then voxel_angstrom is needed). Give exactly one
    of b, pdb, phantom (the built-in phantom of 2000 atoms). Returns a MapComparison."""
    if isinstance(a, (str, bytes)) or hasattr(a, "__fspath__"):
        a, va, _ = read_mrc(a)
        voxel_angstrom = va if voxel_angstrom is None else voxel_angstrom
    a = _cube(a, "a")
    M = a.shape[0]
    if voxel_angstrom is None or not (voxel_angstrom > 0 and math.isfinite(voxel_angstrom)):
        raise Error("compare_maps: voxel_angstrom must be a positive number (or A an MRC file)")
    if (b is not None) + (pdb is not None) + bool(phantom) != 1:
        raise Error("compare_maps: give one reference: b (a second map), pdb or phantom")
    if b is not None:
        if isinstance(b, (str, bytes)) or hasattr(b, "__fspath__"):
            b, vb, _ = read_mrc(b)
            if abs(vb - voxel_angstrom) > 1e-4 * voxel_angstrom:
                raise Error("compare_maps: the maps' voxels differ (%.4g and %.4g A): the grids must match"
                            % (voxel_angstrom, vb))
        b = _cube(b, "b", M)
    else:
        b = reference_density(M, voxel_angstrom, pdb=pdb, assembly=assembly, nthreads=nthreads)
    al = align(a, b, n_rotations=n_rotations, nthreads=nthreads)
    curve = fsc(a, al.aligned)
    return MapComparison(alignment=al, fsc=curve, M=M, voxel_angstrom=voxel_angstrom,
                         resolution=[M * voxel_angstrom / k if k else math.inf for k in range(len(curve))],
                         resolution_05=fsc_resolution(curve, voxel_angstrom, 0.5),
                         resolution_0143=fsc_resolution(curve, voxel_angstrom, 0.143))


def autocorrelation(rho, nthreads=0):
    """The centred autocorrelation u = IFFT(|FFT rho|^2) of a density on the same grid
    (spf_autocorrelation)."""
    r = _cube(rho, "rho")
    out = np.empty_like(r)
    with _lib.planner_lock:
        rc = lib.spf_autocorrelation(r.shape[0], addr(r), addr(out), int(nthreads))
    check(rc, "autocorrelation")
    return out


def shell_correlation(a, b, r_min=0.0, r_max=0.0):
    """Pearson correlation of two intensities per shell of integer index radius, over the
    voxels with r_min <= |q| <= r_max (r_max <= 0: (M-1)/2) (spf_shell_correlation).
    Returns (correlation per shell, voxels per shell)."""
    a = _cube(a, "a")
    b = _cube(b, "b", a.shape[0])
    M = a.shape[0]
    ns = (M - 1) // 2 + 1
    corr = np.empty(ns, dtype=np.float64)
    count = np.empty(ns, dtype=np.int64)
    check(lib.spf_shell_correlation(M, addr(a), addr(b), float(r_min), float(r_max), addr(corr), addr(count)),
          "shell_correlation")
    return corr, count


def align_intensity(ref, mov, n_rotations=4000, r_min=1.0, r_max=0.0, interpolation="fourier", nthreads=0):
    """Turn intensity mov onto ref by a rotation about the grid centre (spf_shellcorr_align,
    what `spinifel fsc --intensity` does); returns (score, quat, aligned): the mean shell
    correlation, the rotation (w x y z) and mov turned. interpolation 'fourier' (exact for
    reconstruct's intensity) or 'trilinear'."""
    ref = _cube(ref, "ref")
    mov = _cube(mov, "mov", ref.shape[0])
    o = _lib.ShellcorrOptions()
    lib.spf_shellcorr_default_options(ctypes.byref(o))
    if interpolation not in ("fourier", "trilinear"):
        raise Error("align_intensity: interpolation must be 'fourier' or 'trilinear', got %r" % (interpolation,))
    o.n_rotations, o.r_min, o.r_max = int(n_rotations), float(r_min), float(r_max)
    o.interpolation, o.nthreads = (0 if interpolation == "fourier" else 1), int(nthreads)
    r = _lib.ShellcorrResult()
    out = np.empty_like(ref)
    with _lib.planner_lock:
        rc = lib.spf_shellcorr_align(ref.shape[0], addr(ref), addr(mov), ctypes.byref(o), ctypes.byref(r), addr(out))
    check(rc, "align_intensity")
    return r.score, np.array(r.quat[:]), out
