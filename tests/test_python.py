"""The Python binding (python/spinifel) against the C library's own results and the
command line, and against slow obvious references with stated bounds.

Run by tests/cli_python.sh (CTest), which sets SPINIFEL_CLI (the built program),
SPINIFEL_LIB (its libspinifel.so) and PYTHONPATH; unittest and numpy only.

What is checked, and how closely:
  - the binding's mirrored C structures against the library (defaults read back as
    documented, nothing written past their end);
  - NUFFT types 1 and 2, 1D/2D/3D, both signs, both mode orders, against direct sums
    in numpy on 300 points: relative l2 error <= 10 tol in double (tol 1e-6 and 1e-10;
    measured up to 3.2 tol) and <= 5 tol in float (tol 1e-3 and 1e-5; float's kernel
    width is chosen from tol but its error estimate is loose at the coarsest widths:
    measured up to 3.3 tol at 1e-3 on 300 points, 2.4 tol in the library's own checks);
    the library's direct sums (spf_nufft_direct) against numpy's within 1e-12; several
    vectors per execute and a plan's second set of points;
  - simulate: the same images, s, mask, orientations and reference map, bit for bit, as
    `spinifel simulate` with the same settings read back through read_dataset and read_mrc
    (noise-free and with Poisson noise);
  - reconstruct: density.mrc byte-identical to `spinifel reconstruct`'s with the same
    options (Euclidean; Poisson with dead-pixel masking; --half 1); the density,
    autocorrelation, intensity and orientations equal (==) to the command line's
    results.h5 (and, with h5dump installed, all of results.h5 but its 'config' text);
    the orientation error as `spinifel orientations` prints it; the progress callback,
    stopping early, exceptions raised in it;
  - fsc and align: the same correlation, rotation, hand, resolutions and FSC curve (as
    printed / written to the CSV) as `spinifel fsc`, for a map against the phantom and
    for two maps;
  - bad input raises spinifel.Error with a message: wrong shapes, non-finite values,
    unknown or out-of-range options, nonexistent files.
"""
import csv
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

import spinifel
from spinifel import Error

CLI = os.environ.get("SPINIFEL_CLI", "")
TMP = None
# Small runs: the whole file must take well under 30 s on a busy 2-core machine.
SIM = dict(images=300, pixels=16, distance=0.03)
SMALL = dict(M=15, refs=300, refs_start=0, soft_k=8, soft_gens=1, phase_cycles=2, threads=2, generations=3)
POISSON = dict(M=15, generations=2, phase_cycles=2, threads=2)


def flags(opts):
    """Keyword options as the command line's flags: refs_start=0 -> --refs-start 0."""
    out = []
    for k, v in opts.items():
        out += ["--" + k.replace("_", "-"), str(v)]
    return out


def cli(*args):
    """Run the command line; its stdout + stderr (fails the test on a non-zero exit)."""
    p = subprocess.run([CLI] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        raise AssertionError("%s %s: exit %d: %s%s" % (CLI, " ".join(map(str, args)), p.returncode, p.stdout,
                                                       p.stderr))
    return p.stdout + p.stderr


def tmp(*parts):
    return os.path.join(TMP, *parts)


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def h5dump_without_config(path):
    """h5dump's text of an HDF5 file (doubles to 17 digits) without its first line (the
    file name) and without the 'config' attribute (the command line stores its
    config.ini there, the binding its resolved options)."""
    t = subprocess.run(["h5dump", "-m", "%.17g", path], stdout=subprocess.PIPE, universal_newlines=True,
                       check=True).stdout
    i = t.index('ATTRIBUTE "config" {')
    depth, j = 0, i
    while True:
        depth += {"{": 1, "}": -1}.get(t[j], 0)
        if t[j] == "}" and depth == 0:
            break
        j += 1
    return t[t.index("\n") + 1:i] + t[j + 1:]


def setUpModule():
    global TMP
    if not CLI or not os.access(CLI, os.X_OK):
        raise unittest.SkipTest("SPINIFEL_CLI does not name the built spinifel program")
    TMP = tempfile.mkdtemp(prefix="spf_python_")
    # The command line's data and runs, shared by the tests below.
    cli("simulate", *flags(SIM), "--no-noise", "-o", tmp("d.h5"), "--mrc", tmp("truth.mrc"), "--voxel", 3, "--quiet")
    out = cli("reconstruct", tmp("d.h5"), "-o", tmp("cli"), *flags(SMALL), "--quiet")
    m = re.search(r"orientation error: median ([0-9.]+) deg, 90th percentile ([0-9.]+) deg", out)
    setUpModule.cli_error = m.groups() if m else None


def tearDownModule():
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


class TestLibrary(unittest.TestCase):
    def test_layouts_and_library(self):
        spinifel.check_layouts()  # raises when a mirrored structure does not match the library
        if os.environ.get("SPINIFEL_LIB"):
            self.assertEqual(os.path.realpath(spinifel.LIB_PATH), os.path.realpath(os.environ["SPINIFEL_LIB"]))
        self.assertIn("outside", spinifel.strerror(4))
        d = spinifel.default_options()
        self.assertEqual((d["M"], d["soft_k"], d["merge.cg_max_iter"], d["phase.n_cycles"], d["model"]),
                         (31, 64, 100, 10, "auto"))


def _modes(N, modeord):
    k = np.arange(-(N // 2), (N + 1) // 2)
    return np.fft.ifftshift(k) if modeord else k


def _exps(x, Ns, sign, modeord):
    return [np.exp(sign * 1j * np.outer(_modes(N, modeord), x[d])) for d, N in enumerate(Ns)]


def direct_type1(x, c, Ns, sign, modeord):
    E = _exps(x, Ns, sign, modeord)
    return np.einsum("j," + ",".join("%sj" % a for a in "abc"[:len(Ns)]) + "->" + "abc"[:len(Ns)], c, *E)


def direct_type2(x, f, sign, modeord):
    E = _exps(x, f.shape, sign, modeord)
    ax = "abc"[:f.ndim]
    return np.einsum(ax + "," + ",".join("%sj" % a for a in ax) + "->j", f, *E)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


class TestNufft(unittest.TestCase):
    BOUND = {"double": 10.0, "float": 5.0}  # relative l2 error / tol (see the module's docstring)

    def test_against_direct_sums(self):
        rng = np.random.default_rng(1)
        for prec, tol in (("double", 1e-6), ("double", 1e-10), ("float", 1e-3), ("float", 1e-5)):
            for Ns in ((37,), (12, 9), (8, 7, 6)):
                for sign in (1, -1):
                    for modeord in (0, 1):
                        n, d = 300, len(Ns)
                        x = rng.uniform(-3 * np.pi, 3 * np.pi, (d, n))
                        c = rng.standard_normal(n) + 1j * rng.standard_normal(n)
                        fm = rng.standard_normal(Ns) + 1j * rng.standard_normal(Ns)
                        what = "%s tol %g modes %s sign %+d modeord %d" % (prec, tol, Ns, sign, modeord)
                        f = spinifel.nufft_type1(x, c, Ns, tol=tol, sign=sign, precision=prec, modeord=modeord)
                        self.assertEqual(f.shape, Ns)
                        self.assertEqual(f.dtype, np.complex128 if prec == "double" else np.complex64)
                        e = rel(f, direct_type1(x, c, Ns, sign, modeord))
                        self.assertLessEqual(e, self.BOUND[prec] * tol, "type 1 " + what)
                        cc = spinifel.nufft_type2(x, fm, tol=tol, sign=sign, precision=prec, modeord=modeord)
                        self.assertEqual(cc.shape, (n,))
                        e = rel(cc, direct_type2(x, fm, sign, modeord))
                        self.assertLessEqual(e, self.BOUND[prec] * tol, "type 2 " + what)
        # The library's own direct sums agree with numpy's.
        x = rng.uniform(-np.pi, np.pi, (3, 200))
        c = rng.standard_normal(200) + 1j * rng.standard_normal(200)
        fm = rng.standard_normal((5, 6, 7)) + 0j
        self.assertLess(rel(spinifel.nufft_direct(1, x, c, (5, 6, 7), sign=-1), direct_type1(x, c, (5, 6, 7), -1, 0)),
                        1e-12)
        self.assertLess(rel(spinifel.nufft_direct(2, x, fm, modeord=1), direct_type2(x, fm, 1, 1)), 1e-12)
        # 1D points may be a flat array.
        x1 = rng.uniform(-np.pi, np.pi, 100)
        c1 = rng.standard_normal(100) + 0j
        self.assertLess(rel(spinifel.nufft_type1(x1, c1, 16, tol=1e-9), direct_type1(x1[None], c1, (16,), 1, 0)),
                        1e-8)

    def test_plan_batches_and_new_points(self):
        rng = np.random.default_rng(2)
        x = rng.uniform(-np.pi, np.pi, (2, 250))
        c = rng.standard_normal((3, 250)) + 1j * rng.standard_normal((3, 250))
        x0, c0 = x.copy(), c.copy()
        with spinifel.Plan(1, (12, 9), n_trans=3, tol=1e-9) as p:
            p.set_points(x)
            f = p.execute(c)
            self.assertEqual(f.shape, (3, 12, 9))
            for t in range(3):
                self.assertLess(rel(f[t], direct_type1(x, c[t], (12, 9), 1, 0)), 1e-8)
            info = p.info()
            self.assertEqual(info["n_modes"], (12, 9))
            self.assertGreater(info["width"], 0)
            x2 = rng.uniform(-np.pi, np.pi, (2, 100))
            p.set_points(x2)
            f2 = p.execute(c[:, :100])
            self.assertLess(rel(f2[1], direct_type1(x2, c[1, :100], (12, 9), 1, 0)), 1e-8)
        np.testing.assert_array_equal(x, x0)  # inputs are not written
        np.testing.assert_array_equal(c, c0)
        with spinifel.Plan(2, (6, 5, 4), tol=1e-5, precision="float") as p:
            p.set_points(rng.uniform(-np.pi, np.pi, (3, 50)))
            self.assertEqual(p.execute(np.ones((6, 5, 4))).dtype, np.complex64)
        self.assertRaises(Error, p.execute, np.ones((6, 5, 4)))  # closed

    def test_bad_input(self):
        x = np.zeros((2, 10))
        c = np.ones(10, complex)
        x_out = x.copy()
        x_out[1, 3] = 10.0
        with self.assertRaises(Error) as e:
            spinifel.nufft_type1(x_out, c, (8, 8))
        self.assertEqual(e.exception.code, 4)
        self.assertIn("outside [-3pi, 3pi)", str(e.exception))
        x_nan = x.copy()
        x_nan[0, 0] = np.nan
        self.assertRaisesRegex(Error, "NaN", spinifel.nufft_type2, x_nan, np.ones((8, 8)))
        c_nan = c.copy()
        c_nan[2] = np.inf
        self.assertRaisesRegex(Error, "NaN or infinite", spinifel.nufft_type1, x, c_nan, (8, 8))
        self.assertRaisesRegex(Error, "shape", spinifel.nufft_type1, x, np.ones(11), (8, 8))
        self.assertRaisesRegex(Error, "coordinate rows", spinifel.nufft_type1, x, c, (8, 8, 8))
        self.assertRaisesRegex(Error, "dim", spinifel.nufft_type1, np.zeros((10, 2)), c, (8, 8))
        self.assertRaisesRegex(Error, ">= 1", spinifel.nufft_type1, x, c, (8, 0))
        with self.assertRaises(Error) as e:
            spinifel.nufft_type1(x, c, (8, 8), tol=1e-20)
        self.assertEqual(e.exception.code, 3)
        with self.assertRaises(Error) as e:
            spinifel.nufft_type1(x, c, (8, 8), tol=1e-9, precision="float")
        self.assertIn("tolerance", str(e.exception))
        self.assertRaisesRegex(Error, "precision", spinifel.nufft_type1, x, c, (8, 8), precision="half")
        self.assertRaisesRegex(Error, "sign", spinifel.nufft_type1, x, c, (8, 8), sign=2)
        self.assertRaisesRegex(Error, "unknown NUFFT option", spinifel.nufft_type1, x, c, (8, 8), fast=1)


class TestSimulate(unittest.TestCase):
    def test_same_as_cli(self):
        py = spinifel.simulate(**SIM, noise=False, truth_voxel=3)
        d = spinifel.read_dataset(tmp("d.h5"))
        for k in ("images", "s", "mask", "orientations"):
            np.testing.assert_array_equal(getattr(py, k), getattr(d, k), k)
        self.assertEqual((py.images.shape, py.images.dtype, py.s.shape, py.mask.shape, py.orientations.shape),
                         ((300, 16, 16), np.float32, (16, 16, 3), (16, 16), (300, 4)))
        self.assertEqual((d.photon_energy_ev, d.distance_m, d.pixel_size_m), (6000.0, 0.03, 3e-4))
        truth, voxel, origin = spinifel.read_mrc(tmp("truth.mrc"))
        np.testing.assert_array_equal(py.truth, truth)
        self.assertEqual(voxel, 3.0)
        np.testing.assert_array_equal(py.truth_origin.astype(np.float32), origin.astype(np.float32))
        part = spinifel.read_dataset(tmp("d.h5"), first=10, count=5)
        np.testing.assert_array_equal(part.images, d.images[10:15])
        np.testing.assert_array_equal(part.orientations, d.orientations[10:15])

    def test_noise_same_as_cli_and_write_dataset(self):
        args = dict(images=40, pixels=12, distance=0.03, seed=7, fluence=5e13, beamstop=0.01)
        cli("simulate", *flags(args), "-o", tmp("n.h5"), "--quiet")
        py = spinifel.simulate(**args, threads=1)
        d = spinifel.read_dataset(tmp("n.h5"))
        for k in ("images", "s", "mask", "orientations"):
            np.testing.assert_array_equal(getattr(py, k), getattr(d, k), k)
        self.assertTrue(np.array_equal(py.images, np.round(py.images)), "photon counts")
        self.assertLess(py.mask.sum(), 144)  # the beam stop
        spinifel.write_dataset(tmp("w.h5"), py)
        w = spinifel.read_dataset(tmp("w.h5"))
        for k in ("images", "s", "mask", "orientations"):
            np.testing.assert_array_equal(getattr(py, k), getattr(w, k), k)

    def test_bad_input(self):
        self.assertRaisesRegex(Error, "images", spinifel.simulate, images=0)
        self.assertRaisesRegex(Error, "distance", spinifel.simulate, images=2, distance=float("nan"))
        self.assertRaisesRegex(Error, "intensity_M", spinifel.simulate, images=2, intensity_M=30)
        with self.assertRaises(Error) as e:
            spinifel.simulate(images=2, pixels=8, pdb=tmp("none.pdb"))
        self.assertIn("none.pdb", str(e.exception))
        with self.assertRaises(Error) as e:
            spinifel.read_dataset(tmp("none.h5"))
        self.assertIn("none.h5", str(e.exception))
        self.assertNotEqual(e.exception.code, 0)
        self.assertRaisesRegex(Error, "asked", spinifel.read_dataset, tmp("d.h5"), first=299, count=2)


class TestReconstruct(unittest.TestCase):
    def test_dataset_same_bytes_as_cli(self):
        res = spinifel.reconstruct_dataset(tmp("d.h5"), tmp("py"), **SMALL)
        self.assertTrue(same_bytes(tmp("cli", "density.mrc"), tmp("py", "density.mrc")),
                        "density.mrc differs from the command line's")
        c = spinifel.read_results(tmp("cli", "results.h5"), 300)
        np.testing.assert_array_equal(res.orientations, c["orientations"])
        np.testing.assert_array_equal(res.rho, c["density"])
        np.testing.assert_array_equal(res.u, c["autocorrelation"])
        np.testing.assert_array_equal(res.intensity(), c["intensity"])
        self.assertEqual(res.grid, c["grid"])
        p = spinifel.read_results(tmp("py", "results.h5"), 300)
        for k in ("orientations", "density", "autocorrelation", "intensity"):
            np.testing.assert_array_equal(p[k], c[k], k)
        if shutil.which("h5dump"):  # hdf5-tools: every dataset and attribute but config
            self.assertEqual(h5dump_without_config(tmp("py", "results.h5")),
                             h5dump_without_config(tmp("cli", "results.h5")))
        self.assertEqual((res.generations, res.model, res.rho.shape), (3, "euclidean", (15, 15, 15)))
        self.assertIsNotNone(setUpModule.cli_error)
        self.assertEqual(tuple("%.2f" % e for e in res.orientation_error), setUpModule.cli_error)
        out = cli("orientations", tmp("py", "results.h5"), tmp("d.h5"))
        self.assertIn("orientation error median %.2f deg, 90th percentile %.2f deg" % res.orientation_error, out)

    def test_arrays_and_callbacks(self):
        sim = spinifel.simulate(**SIM, noise=False)
        gens, steps = [], set()
        res = spinifel.reconstruct(sim.images, sim.s, sim.mask, true_orientations=sim.orientations,
                                   progress=lambda g: gens.append(g), step=lambda g, name, d, t: steps.add(name),
                                   **SMALL)
        c = spinifel.read_results(tmp("cli", "results.h5"), 300)
        np.testing.assert_array_equal(res.rho, c["density"])
        np.testing.assert_array_equal(res.orientations, c["orientations"])
        self.assertEqual([g["generation"] for g in gens], [0, 1, 2])
        self.assertEqual(gens, res.log)
        self.assertTrue(all(math.isfinite(g["median_orientation_error_deg"]) for g in gens))
        self.assertEqual(steps, {"slice+match", "merge", "phase"})
        # A true return value stops after that generation; an exception stops and is raised.
        short = spinifel.reconstruct(sim.images, sim.s, sim.mask, progress=lambda g: g["generation"] == 1, **SMALL)
        self.assertEqual((short.generations, len(short.log)), (2, 2))

        def boom(g):
            raise ValueError("stop here")
        self.assertRaisesRegex(ValueError, "stop here", spinifel.reconstruct, sim.images, sim.s, sim.mask,
                               progress=boom, **SMALL)

    def test_poisson_dead_pixels_same_bytes_as_cli(self):
        # Photon counts with a 2 x 2 block of valid pixels that never saw a photon: the
        # Poisson model, EMC's 3,240 references and the dead-pixel mask, as the command line.
        d = spinifel.simulate(images=60, pixels=16, distance=0.03, seed=7, fluence=5e13)
        d.images[:, 7:9, 7:9] = 0
        spinifel.write_dataset(tmp("dead.h5"), d)
        out = cli("reconstruct", tmp("dead.h5"), "-o", tmp("cli_dead"), *flags(POISSON), "--quiet")
        res = spinifel.reconstruct_dataset(tmp("dead.h5"), tmp("py_dead"), **POISSON)
        self.assertTrue(same_bytes(tmp("cli_dead", "density.mrc"), tmp("py_dead", "density.mrc")),
                        "Poisson density.mrc differs from the command line's")
        self.assertEqual((res.model, res.options["n_references"], res.dead_pixels), ("poisson", 3240, 4))
        self.assertIn("masked %d pixels" % res.dead_pixels, out)
        self.assertEqual(res.pixels_used[7:9, 7:9].sum(), 0)

    def test_half_same_bytes_as_cli(self):
        opts = dict(SMALL, generations=2)
        cli("reconstruct", tmp("d.h5"), "-o", tmp("cli_h1"), "--half", 1, *flags(opts), "--quiet")
        spinifel.reconstruct_dataset(tmp("d.h5"), tmp("py_h1"), half=1, **opts)
        self.assertTrue(same_bytes(tmp("cli_h1", "density.mrc"), tmp("py_h1", "density.mrc")))

    def test_bad_input(self):
        d = spinifel.read_dataset(tmp("d.h5"), count=20)
        im, s, m = d.images, d.s, d.mask
        self.assertRaisesRegex(Error, "images: expected shape", spinifel.reconstruct, im[0, 0], s, m)
        self.assertRaisesRegex(Error, "s: expected shape", spinifel.reconstruct, im, s[:, :, :2], m)
        self.assertRaisesRegex(Error, "mask: expected shape", spinifel.reconstruct, im, s, m[:8])
        bad = im.copy()
        bad[3, 5, 5] = np.nan
        self.assertRaisesRegex(Error, "images: holds NaN", spinifel.reconstruct, bad, s, m)
        bad_s = s.copy()
        bad_s[2, 2, 0] = np.inf
        self.assertRaisesRegex(Error, "s: holds NaN", spinifel.reconstruct, im, bad_s, m)
        self.assertRaisesRegex(Error, "true_orientations", spinifel.reconstruct, im, s, m,
                               true_orientations=np.zeros((3, 4)))
        self.assertRaisesRegex(Error, "unknown reconstruct option 'frobnicate'", spinifel.reconstruct, im, s, m,
                               frobnicate=3)
        self.assertRaisesRegex(Error, "M: must be odd", spinifel.reconstruct, im, s, m, M=20)
        self.assertRaisesRegex(Error, "outside", spinifel.reconstruct, im, s, m, generations=-1)
        self.assertRaisesRegex(Error, "integer", spinifel.reconstruct, im, s, m, soft_k=2.5)
        self.assertRaisesRegex(Error, "model", spinifel.reconstruct, im, s, m, model="bayes")
        self.assertRaisesRegex(Error, "twice", spinifel.reconstruct, im, s, m, refs=3, n_references=3)
        with self.assertRaises(Error) as e:
            spinifel.reconstruct(np.zeros_like(im), s, m, **SMALL)
        self.assertIn("every valid pixel of every image is 0", str(e.exception))
        self.assertRaisesRegex(Error, "none.h5", spinifel.reconstruct_dataset, tmp("none.h5"))


class TestValidation(unittest.TestCase):
    def test_compare_maps_as_cli_fsc(self):
        a = tmp("cli", "density.mrc")
        out = cli("fsc", a, "--phantom", "--rotations", 500, "-o", tmp("fsc.csv"), "--threads", 2)
        r = spinifel.compare_maps(a, phantom=True, n_rotations=500, nthreads=2)
        al = r.alignment
        line = "correlation %.4f, rotation (w x y z) %.5f %.5f %.5f %.5f (%.1f deg), %s hand" % (
            (al.correlation,) + tuple(al.quat) + (al.angle_deg, "other" if al.inverted else "same"))
        self.assertIn(line, out)
        self.assertIn("FSC 0.5 at %.2f A, 0.143 at %.2f A" % (r.resolution_05, r.resolution_0143), out)
        with open(tmp("fsc.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([row["fsc"] for row in rows], ["%.6f" % v for v in r.fsc])
        # Two maps: the command line's density against the Python run's of another seed.
        spinifel.reconstruct_dataset(tmp("d.h5"), tmp("py_seed2"), **dict(SMALL, seed=2, generations=2))
        b = tmp("py_seed2", "density.mrc")
        out = cli("fsc", a, b, "--rotations", 300, "--threads", 2)
        r = spinifel.compare_maps(a, b, n_rotations=300, nthreads=2)
        self.assertIn("correlation %.4f, rotation (w x y z) %.5f %.5f %.5f %.5f" % (
            (r.alignment.correlation,) + tuple(r.alignment.quat)), out)
        self.assertIn("FSC 0.5 at %.2f A, 0.143 at %.2f A" % (r.resolution_05, r.resolution_0143), out)

    def test_fsc_align_mrc(self):
        vol, voxel, origin = spinifel.read_mrc(tmp("cli", "density.mrc"))
        M = vol.shape[0]
        curve = spinifel.fsc(vol, vol)
        self.assertEqual(curve.shape, ((M - 1) // 2 + 1,))
        np.testing.assert_allclose(curve, 1.0, atol=1e-12)
        self.assertAlmostEqual(spinifel.fsc_resolution(curve, voxel), 2 * voxel * M / (M - 1), places=9)
        # A weak shell's dip: the first crossing reads it, the crossing for good the tail.
        dip = np.array([1, 1, 0.95, 0.45, 0.7, 0.3, 0.1])
        self.assertAlmostEqual(spinifel.fsc_resolution(dip, 1.0), 13 / 2.9, places=12)
        self.assertAlmostEqual(spinifel.fsc_resolution(dip, 1.0, outer=True), 13 / 4.5, places=12)
        al = spinifel.align(vol, vol, n_rotations=200)
        self.assertGreater(al.correlation, 0.999)
        # At a given rotation (the identity): the hand and the shift only, the rotation kept.
        al0 = spinifel.align(vol, vol, refine_steps=0, start=(2.0, 0.0, 0.0, 0.0))
        self.assertGreater(al0.correlation, 0.999)
        np.testing.assert_allclose(al0.quat, (1.0, 0.0, 0.0, 0.0), atol=1e-15)
        self.assertRaisesRegex(Error, "start must be", spinifel.align, vol, vol, start=(0, 0, 0, 0))
        self.assertEqual(al.aligned.shape, vol.shape)
        # Writing the map back gives the command line's bytes, with its origin or the default.
        spinifel.write_mrc(tmp("again.mrc"), vol, voxel, origin)
        self.assertTrue(same_bytes(tmp("again.mrc"), tmp("cli", "density.mrc")))
        spinifel.write_mrc(tmp("again2.mrc"), vol, voxel)
        self.assertTrue(same_bytes(tmp("again2.mrc"), tmp("cli", "density.mrc")))
        q = spinifel.read_dataset(tmp("d.h5")).orientations
        med, p90 = spinifel.orientation_error(q, q)
        self.assertLess(p90, 1e-3)

    def test_bad_input(self):
        vol = np.zeros((15, 15, 15))
        self.assertRaisesRegex(Error, "grids must match", spinifel.fsc, vol, np.zeros((13, 13, 13)))
        self.assertRaisesRegex(Error, "odd size", spinifel.align, np.zeros((14, 14, 14)), np.zeros((14, 14, 14)))
        bad = vol.copy()
        bad[1, 2, 3] = np.nan
        self.assertRaisesRegex(Error, "NaN", spinifel.fsc, vol, bad)
        self.assertRaisesRegex(Error, "none.mrc", spinifel.read_mrc, tmp("none.mrc"))
        self.assertRaisesRegex(Error, "NaN", spinifel.write_mrc, tmp("x.mrc"), bad, 1.0)
        self.assertRaisesRegex(Error, "3D", spinifel.write_mrc, tmp("x.mrc"), np.zeros((4, 4)), 1.0)
        self.assertRaisesRegex(Error, "one reference", spinifel.compare_maps, vol, voxel_angstrom=1.0)
        self.assertRaisesRegex(Error, r"\(n, 4\)", spinifel.orientation_error, np.zeros((3, 4)), np.zeros((2, 4)))


if __name__ == "__main__":
    t0 = time.time()
    prog = unittest.main(exit=False, verbosity=2)
    print("test_python.py: %.1f s" % (time.time() - t0))
    sys.exit(0 if prog.result.wasSuccessful() else 1)
