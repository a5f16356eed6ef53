"""Datasets (HDF5, EMC), the simulator and MRC maps (dataset.h, simulate.h, molecule.h,
detector.h, scattering.h, intensity.h, mrc.h, fsc.h's reference density)."""
import ctypes
import math
import os

import numpy as np

from . import _lib
from ._lib import Error, addr, as_array, check, lib, msgbuf, path_bytes


class Dataset:
    """Diffraction images with their detector, as read_dataset and simulate return them.

    images        (N, ny, nx) float32: photons (or expected counts) per pixel
    s             (ny, nx, 3) float64: each pixel's scattering vector (sx, sy, sz), 1/m
    mask          (ny, nx) uint8: 1 = valid pixel
    orientations  (N, 4) float64 quaternions (w, x, y, z) of the images, or None
    photon_energy_ev, distance_m, pixel_size_m, generator: the file's attributes
    Pixel (row, column) is flat pixel row * nx + column everywhere in spinifel. simulate
    adds its own figures (see simulate)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @property
    def n_images(self):
        return self.images.shape[0]

    def __repr__(self):
        parts = []
        for k, v in self.__dict__.items():
            if isinstance(v, np.ndarray):
                parts.append("%s=<%s %s>" % (k, v.dtype, "x".join(map(str, v.shape))))
            elif v is not None and not isinstance(v, dict):
                parts.append("%s=%r" % (k, v))
        return "Dataset(%s)" % ", ".join(parts)


def _flag(x):
    return 1 if x else 0


def read_dataset(path, detector=None, first=0, count=None):
    """Read a dataset through the library's reader (dataset.h), no h5py needed.

    path: a spinifel/SpiniFEL HDF5 dataset, a CXI file, or with detector= an EMC photon
    file and its detector file (photons.h). first, count: the range of images (default
    all). Returns a Dataset (images (count, ny, nx) float32, s (ny, nx, 3) in 1/m, mask
    (ny, nx), orientations (count, 4) or None)."""
    d = ctypes.POINTER(_lib.Dataset)()
    msg = msgbuf()
    if detector is None:
        rc = lib.spf_dataset_open(path_bytes(path), ctypes.byref(d), msg, len(msg))
    else:
        rc = lib.spf_dataset_open_emc(path_bytes(path), path_bytes(detector), ctypes.byref(d), msg, len(msg))
    check(rc, "read_dataset", msg)
    try:
        h = d.contents.h
        n_all, n_pix = h.n_images, d.contents.n_pixels
        first = int(first)
        count = n_all - first if count is None else int(count)
        if first < 0 or count < 0 or first + count > n_all:
            raise Error("read_dataset: images %d .. %d asked, the file holds %d" % (first, first + count - 1, n_all))
        shape = (h.ny, h.nx) if h.ny * h.nx == n_pix else (n_pix,)
        images = np.empty((count,) + shape, dtype=np.float32)
        quats = np.empty((count, 4), dtype=np.float64) if h.has_orientations else None
        if count:
            rc = lib.spf_dataset_read_images(d, first, count, addr(images), addr(quats), msg, len(msg))
            check(rc, "read_dataset", msg)
        return Dataset(images=images, s=as_array(d.contents.s, shape + (3,), np.float64),
                       mask=as_array(d.contents.mask, shape, np.uint8), orientations=quats,
                       photon_energy_ev=h.photon_energy_ev, distance_m=h.distance_m, pixel_size_m=h.pixel_size_m,
                       generator=h.generator.decode(errors="replace"), path=os.fspath(path))
    finally:
        lib.spf_dataset_close_reader(d)


def _pixels(data, images=None, s=None, mask=None):
    """images (N, P), s (P, 3), mask (P,) as C wants them, with their 2D shape."""
    if data is not None:
        images, s, mask = data.images, data.s, data.mask
    images = np.asarray(images)
    s = np.asarray(s)
    if images.ndim not in (2, 3):
        raise Error("images: expected shape (N, ny, nx) or (N, n_pixels), got %s" % (images.shape,))
    shape = images.shape[1:]
    n_pix = int(np.prod(shape))
    if s.shape != shape + (3,) and s.shape != (n_pix, 3):
        raise Error("s: expected shape %s (one (sx, sy, sz) per pixel, 1/m), got %s" % (shape + (3,), s.shape))
    if mask is None:
        mask = np.ones(shape, np.uint8)
    mask = np.asarray(mask)
    if mask.shape != shape and mask.shape != (n_pix,):
        raise Error("mask: expected shape %s, got %s" % (shape, mask.shape))
    return images, s, mask, shape


def write_dataset(path, data, compression=0):
    """Write a Dataset (read_dataset's or simulate's, or one built with the same fields)
    as a spinifel HDF5 dataset (dataset.h), through the library's writer: `spinifel
    reconstruct` reads it. data needs images, s, mask, photon_energy_ev, distance_m,
    pixel_size_m; orientations and generator are optional. compression: deflate 0-9."""
    images, s, mask, shape = _pixels(data)
    if len(shape) != 2:
        raise Error("write_dataset: images must be (N, ny, nx)")
    n, (ny, nx) = images.shape[0], shape
    images = np.ascontiguousarray(images, dtype=np.float32)
    if not np.isfinite(images).all() or (images < 0).any():
        raise Error("write_dataset: images hold NaN, infinite or negative values")
    s = np.ascontiguousarray(s, dtype=np.float64).reshape(ny * nx, 3)
    mask = np.ascontiguousarray(mask != 0, dtype=np.uint8).reshape(ny * nx)
    q = getattr(data, "orientations", None)
    if q is not None:
        q = np.ascontiguousarray(q, dtype=np.float64)
        if q.shape != (n, 4):
            raise Error("write_dataset: orientations: expected shape (%d, 4), got %s" % (n, q.shape))
    h = _lib.DatasetHeader(n_images=n, ny=ny, nx=nx, photon_energy_ev=float(data.photon_energy_ev),
                           distance_m=float(data.distance_m), pixel_size_m=float(data.pixel_size_m),
                           has_orientations=_flag(q is not None), compression=int(compression))
    h.generator = (getattr(data, "generator", "") or "spinifel python").encode()[:1023]
    w = ctypes.c_void_p()
    msg = msgbuf()
    rc = lib.spf_dataset_create(path_bytes(path), ctypes.byref(h), ctypes.byref(w), msg, len(msg))
    check(rc, "write_dataset", msg)
    try:
        check(lib.spf_dataset_write_geometry(w, addr(s), addr(mask)), "write_dataset: geometry of %s" % path)
        check(lib.spf_dataset_write_images(w, 0, n, addr(images), addr(q)), "write_dataset: images of %s" % path)
    except BaseException:
        lib.spf_dataset_abort(w)
        raise
    check(lib.spf_dataset_close(w, msg, len(msg)), "write_dataset", msg)


# ---- molecules -----------------------------------------------------------------------

def _molecule(pdb=None, assembly=False, atoms=2000):
    """A C molecule (caller frees with spf_molecule_free): the PDB file, or the built-in
    phantom of `atoms` atoms (seed 1, as the command line)."""
    mol = ctypes.POINTER(_lib.Molecule)()
    msg = msgbuf()
    if pdb is not None:
        po = _lib.PdbOptions()
        lib.spf_pdb_default_options(ctypes.byref(po))
        po.assembly = _flag(assembly)
        rc = lib.spf_molecule_read_pdb(path_bytes(pdb), ctypes.byref(po), ctypes.byref(mol), msg, len(msg))
        check(rc, "molecule", msg)
    else:
        if int(atoms) < 1:
            raise Error("atoms must be >= 1, got %r" % (atoms,))
        check(lib.spf_molecule_phantom(1, int(atoms), ctypes.byref(mol)), "built-in phantom")
    return mol


def _scattering_types(mol):
    n = mol.contents.n_atoms
    types = np.empty(max(n, 1), dtype=np.intc)
    ff = (_lib.GaussianFormFactor * 128)()
    n_types = ctypes.c_int()
    check(lib.spf_molecule_scattering_types(mol, addr(types), ff, ctypes.byref(n_types)), "molecule form factors")
    return types, ff, n_types.value


def reference_density(M, voxel_angstrom, pdb=None, assembly=False, atoms=2000, nthreads=0):
    """A molecule's electron density on a centred M^3 grid (fsc.h: spf_reference_density),
    what `spinifel fsc --pdb FILE` / `--phantom` aligns to a map: the PDB file's atoms or
    the built-in phantom (atoms), centred on their centre of mass, each blurred by
    B = 2 pi^2 voxel^2. voxel in Angstrom; returns (M, M, M) float64, indexed [z, y, x]."""
    M = int(M)
    if M < 3 or M % 2 == 0:
        raise Error("reference_density: M must be odd and >= 3, got %d" % M)
    if not (voxel_angstrom > 0 and math.isfinite(voxel_angstrom)):
        raise Error("reference_density: voxel must be a positive number of Angstrom, got %r" % (voxel_angstrom,))
    mol = _molecule(pdb, assembly, atoms)
    try:
        out = np.empty((M, M, M), dtype=np.float64)
        check(lib.spf_reference_density(mol, M, float(voxel_angstrom), int(nthreads), addr(out)),
              "reference_density")
        return out
    finally:
        lib.spf_molecule_free(mol)


# ---- the simulator -----------------------------------------------------------------------

_UNITS = ("e2", "photons-per-sr", "photons-per-pixel")


def simulate(images=1000, pixels=128, pixel_size=3e-4, distance=0.1, energy=6000.0, beamstop=0.0, bin2=False,
             pdb=None, assembly=False, atoms=2000, fluence=1e12, jitter=0.0, background=0.0, noise=True, seed=1,
             tol=1e-4, threads=0, truth_voxel=None, intensity_M=None, intensity_oversampling=1.0,
             intensity_unit="e2", progress=None):
    """Simulate diffraction images of one molecule in uniformly random orientations, as
    `spinifel simulate` does (same arguments, same units, same seed: the same images,
    bit for bit, whatever the thread count).

    molecule: pdb (a PDB file; assembly: apply its BIOMT assembly) or the built-in
      phantom of `atoms` atoms.
    detector: pixels x pixels of pixel_size (m) at distance (m), photon energy (eV),
      beamstop: pixels with |s| below this (1/Angstrom) masked; bin2: bin 2x2 first.
    beam: fluence (photons per um^2 per pulse), jitter (relative spread of the shot
      fluence), background (mean photons per pixel), noise (Poisson photon counts;
      False: expected counts), seed, tol (structure-factor accuracy), threads (0: all).
    truth_voxel (Angstrom): also the reference density map `--mrc` writes, in .truth
      ((n, n, n) float32, [z, y, x]), .truth_voxel and .truth_origin (Angstrom, x y z).
    intensity_M (odd): also the true 3D intensity on reconstruct's grid for this data
      (`--intensity-out`), in .intensity ((M, M, M) float64, [z, y, x]) and .intensity_grid
      (dict, 1/Angstrom), in intensity_unit 'e2', 'photons-per-sr' or 'photons-per-pixel'.
    progress(done, total): called after each batch of images.

    Returns a Dataset: images (N, ny, nx) float32, s (ny, nx, 3) in 1/m, mask (ny, nx)
    uint8, orientations (N, 4), the geometry, and n_atoms, radius_of_gyration_angstrom,
    max_radius_angstrom, resolution_edge_angstrom, resolution_corner_angstrom."""
    n_images, pixels, seed, threads = int(images), int(pixels), int(seed), int(threads)
    if n_images < 1:
        raise Error("simulate: images must be >= 1, got %d" % n_images)
    if pixels < 2:
        raise Error("simulate: pixels must be >= 2, got %d" % pixels)
    if seed < 0 or threads < 0:
        raise Error("simulate: seed and threads must be >= 0")
    for name, v in (("pixel_size", pixel_size), ("distance", distance), ("energy", energy), ("tol", tol)):
        if not (math.isfinite(v) and v > 0):
            raise Error("simulate: %s must be a positive number, got %r" % (name, v))
    for name, v in (("beamstop", beamstop), ("fluence", fluence), ("jitter", jitter), ("background", background)):
        if not (math.isfinite(v) and v >= 0):
            raise Error("simulate: %s must be a finite number >= 0, got %r" % (name, v))
    if intensity_M is not None and (int(intensity_M) < 3 or int(intensity_M) % 2 == 0):
        raise Error("simulate: intensity_M must be odd and >= 3, got %r" % (intensity_M,))
    if intensity_unit not in _UNITS:
        raise Error("simulate: intensity_unit must be one of %s, got %r" % (", ".join(_UNITS), intensity_unit))
    mol = _molecule(pdb, assembly, atoms)
    det = ctypes.POINTER(_lib.Detector)()
    sc = ctypes.c_void_p()
    try:
        lib.spf_molecule_centre(mol)
        rg, rmax = ctypes.c_double(), ctypes.c_double()
        lib.spf_molecule_size(mol, ctypes.byref(rg), ctypes.byref(rmax))
        g = _lib.DetectorGeometry()
        lib.spf_detector_default_geometry(ctypes.byref(g))
        g.nx = g.ny = pixels
        g.pixel_size_m, g.distance_m, g.photon_energy_ev = pixel_size, distance, energy
        g.beamstop_inv_m = beamstop * 1e10
        full = ctypes.POINTER(_lib.Detector)()
        check(lib.spf_detector_make(ctypes.byref(g), ctypes.byref(full)), "simulate: detector")
        if bin2:
            rc = lib.spf_detector_bin2(full, ctypes.byref(det))
            lib.spf_detector_free(full)
            check(rc, "simulate: detector")
        else:
            det = full
        D = det.contents
        n_atoms = mol.contents.n_atoms
        types, ff, n_types = _scattering_types(mol)
        xyz = mol.contents.xyz
        with _lib.planner_lock:
            rc = lib.spf_scattering_make(n_atoms, ctypes.cast(xyz, ctypes.c_void_p), addr(types), n_types, ff,
                                         D.s_max * 1e-10 * (1 + 1e-6), float(tol), threads, ctypes.byref(sc))
        check(rc, "simulate: structure factors")
        n_pix, ny, nx = D.n_pixels, D.g.ny, D.g.nx
        s = as_array(D.s, (n_pix, 3), np.float64)
        mask = as_array(D.mask, (n_pix,), np.uint8)
        weight = np.ascontiguousarray(as_array(D.solid_angle, (n_pix,), np.float64) *
                                      as_array(D.polarization, (n_pix,), np.float64))
        px = _lib.SimPixels(n_pix, ctypes.cast(D.s, ctypes.c_void_p), addr(weight),
                            ctypes.cast(D.mask, ctypes.c_void_p))
        so = _lib.SimulateOptions()
        lib.spf_simulate_default_options(ctypes.byref(so))
        so.n_images, so.seed, so.fluence = n_images, seed, fluence * 1e12
        so.fluence_jitter, so.background, so.poisson, so.nthreads = jitter, background, _flag(noise), threads
        out = np.empty((n_images, ny, nx), dtype=np.float32)
        quats = np.empty((n_images, 4), dtype=np.float64)
        raised = []

        def sink(ctx, first, count, img, q):
            try:
                out.reshape(n_images, n_pix)[first:first + count] = as_array(img, (count, n_pix), np.float32)
                quats[first:first + count] = as_array(q, (count, 4), np.float64)
                return 0
            except BaseException as e:  # noqa: B902 - handed back to the caller below
                raised.append(e)
                return 11

        def report(ctx, done, total):
            if raised:
                return
            try:
                progress(done, total)
            except BaseException as e:
                raised.append(e)

        tm = _lib.SimulateTiming()
        rc = lib.spf_simulate_images(sc, ctypes.byref(px), ctypes.byref(so), _lib.IMAGE_SINK(sink), None,
                                     _lib.SIM_PROGRESS_FN(report) if progress else _lib.SIM_PROGRESS_FN(),
                                     None, ctypes.byref(tm))
        if raised:
            raise raised[0]
        check(rc, "simulate")
        result = Dataset(images=out, s=s.reshape(ny, nx, 3), mask=mask.reshape(ny, nx), orientations=quats,
                         photon_energy_ev=float(energy), distance_m=float(distance), pixel_size_m=D.g.pixel_size_m,
                         generator="spinifel python simulate: molecule=%s atoms=%d images=%d pixels=%dx%d "
                                   "pixel_size=%g distance=%g energy=%g beamstop=%g fluence=%g/um2 jitter=%g "
                                   "background=%g noise=%s seed=%d tol=%g bin2=%d"
                                   % (pdb if pdb else "phantom", n_atoms, n_images, nx, ny, D.g.pixel_size_m,
                                      distance, energy, beamstop, fluence, jitter, background,
                                      "poisson" if noise else "none", seed, tol, _flag(bin2)),
                         n_atoms=n_atoms, radius_of_gyration_angstrom=rg.value, max_radius_angstrom=rmax.value,
                         resolution_edge_angstrom=D.resolution_edge_m * 1e10,
                         resolution_corner_angstrom=D.resolution_corner_m * 1e10)
        if truth_voxel is not None:
            v = float(truth_voxel)
            if not (v > 0 and math.isfinite(v)):
                raise Error("simulate: truth_voxel must be a positive number of Angstrom, got %r" % (truth_voxel,))
            n = 2 * int(math.ceil((rmax.value + 4.0) / v)) + 1
            origin = np.full(3, -0.5 * (n - 1) * v)
            truth = np.empty((n, n, n), dtype=np.float32)
            rc = lib.spf_scattering_density(n_atoms, ctypes.cast(xyz, ctypes.c_void_p), addr(types), n_types, ff,
                                            2 * math.pi * math.pi * v * v, n, v, addr(origin), threads, addr(truth))
            check(rc, "simulate: reference map")
            result.truth, result.truth_voxel, result.truth_origin = truth, v, origin
        if intensity_M is not None:
            im = int(intensity_M)
            grid = _lib.IntensityGrid()
            check(lib.spf_intensity_grid_make(im, float(intensity_oversampling), n_pix, addr(s), addr(mask),
                                              ctypes.byref(grid)), "simulate: intensity grid")
            fluence_sr = fluence * 1e12 * 2.8179403262e-15 ** 2  # SPF_R_ELECTRON_M (simulate.h)
            pixel_sr = D.g.pixel_size_m ** 2 / distance ** 2
            scale = {"e2": 1.0, "photons-per-sr": fluence_sr, "photons-per-pixel": fluence_sr * pixel_sr}[
                intensity_unit]
            vol = np.empty((im, im, im), dtype=np.float64)
            with _lib.planner_lock:
                rc = lib.spf_intensity_of_molecule(n_atoms, ctypes.cast(xyz, ctypes.c_void_p), addr(types), n_types,
                                                   ff, ctypes.byref(grid), scale, float(tol), threads, addr(vol))
            check(rc, "simulate: intensity")
            result.intensity, result.intensity_unit = vol, intensity_unit
            result.intensity_grid = _grid_dict(grid)
        return result
    finally:
        if sc:
            with _lib.planner_lock:
                lib.spf_scattering_free(sc)
        if det:
            lib.spf_detector_free(det)
        lib.spf_molecule_free(mol)


def _grid_dict(g):
    return {name: getattr(g, name) for name, _ in _lib.IntensityGrid._fields_}


# ---- MRC maps -------------------------------------------------------------------------------

def write_mrc(path, volume, voxel_angstrom, origin=None):
    """Write a density map (MRC2014 mode 2, float32; mrc.h: spf_mrc_write), for ChimeraX,
    PyMOL and friends. volume: (nz, ny, nx), indexed [z, y, x] (x fastest in the file, as
    every volume of this package); voxel in Angstrom; origin: the position (x, y, z) of
    voxel (0, 0, 0) in Angstrom, default the grid centred on 0, -0.5 (n - 1) voxel on each
    axis (reconstruct's and simulate's maps). Written to a temporary name and renamed."""
    vol = np.asarray(volume)
    if vol.ndim != 3 or min(vol.shape) < 1:
        raise Error("write_mrc: volume must be 3D (nz, ny, nx), got shape %s" % (vol.shape,))
    if not np.issubdtype(vol.dtype, np.number) or np.issubdtype(vol.dtype, np.complexfloating):
        raise Error("write_mrc: real values expected, got dtype %s" % vol.dtype)
    vol = np.ascontiguousarray(vol, dtype=np.float32)
    if not np.isfinite(vol).all():
        raise Error("write_mrc: the volume holds NaN or infinite values")
    nz, ny, nx = vol.shape
    voxel = float(voxel_angstrom)
    if origin is None:
        origin = [-0.5 * (nx - 1) * voxel, -0.5 * (ny - 1) * voxel, -0.5 * (nz - 1) * voxel]
    origin = np.ascontiguousarray(origin, dtype=np.float64)
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise Error("write_mrc: origin must be 3 finite numbers (x, y, z), got %s" % (origin,))
    msg = msgbuf()
    check(lib.spf_mrc_write(path_bytes(path), addr(vol), nx, ny, nz, voxel, addr(origin), msg, len(msg)),
          "write_mrc", msg)


def read_mrc(path):
    """Read a mode-2 MRC map (spf_mrc_read): returns (volume (nz, ny, nx) float32 indexed
    [z, y, x], voxel in Angstrom, origin (x, y, z) in Angstrom)."""
    data = ctypes.c_void_p()
    dims = np.zeros(3, dtype=np.int64)
    voxel = ctypes.c_double()
    origin = np.zeros(3, dtype=np.float64)
    msg = msgbuf()
    rc = lib.spf_mrc_read(path_bytes(path), ctypes.byref(data), addr(dims), ctypes.byref(voxel), addr(origin), msg,
                          len(msg))
    check(rc, "read_mrc", msg)
    try:
        nx, ny, nz = (int(v) for v in dims)
        vol = as_array(data, (nz, ny, nx), np.float32)
    finally:
        _lib.c_free(data.value)
    return vol, voxel.value, origin
