"""M-TIP reconstruction (reconstruct.h, results.h), and the command line's path from a
dataset file to density.mrc (app/cmd_reconstruct.c) in the library's calls."""
import ctypes
import math
import os

import numpy as np

from . import _lib
from ._data import _pixels, read_dataset, write_mrc
from ._lib import Error, addr, as_array, check, lib, msgbuf, path_bytes

MODELS = {"auto": -1, "euclidean": 0, "poisson": 1}
_MODEL_NAMES = {0: "euclidean", 1: "poisson"}

# The command line's parameter names (`spinifel reconstruct --help`, '-' written '_')
# that are not the C field's name; every other parameter is its field's name.
CLI_NAMES = {
    "refs": "n_references", "refs_gens": "refs_generations", "generations": "max_generations",
    "res_gens": "res_generations", "soft_gens": "soft_generations", "prior": "use_prior",
    "cg_iterations": "merge.cg_max_iter", "cg_tol": "merge.cg_tol", "merge_tol": "merge.nufft_tol",
    "preconditioner": "merge.preconditioner", "phase_cycles": "phase.n_cycles", "beta": "phase.beta",
    "threads": "nthreads",
}

# Allowed ranges: the command line's (app/reconstruct_config.c), so the library never sees
# a value the command line would refuse; the fields it does not expose get loose bounds.
_RANGES = {
    "poisson_mean": (0, 1e9), "beta_start": (0, 1), "beta_min_spread": (0, 1e6), "beta_max": (1e-6, 1),
    "beta_period": (0, 1000), "model_floor": (0, 1e3), "update_fluence": (0, 1), "positive_intensity": (-1, 1),
    "M": (3, 301), "oversampling": (1, 16), "n_references": (0, 1e9), "refs_max": (1, 1e9),
    "refs_start": (0, 1e9), "refs_generations": (1, 1000), "ref_batch": (1, 1e6), "max_generations": (0, 1000),
    "stop_fraction": (0, 1), "n_rho": (1, 100), "rho_min": (1e-12, 1e12), "rho_max": (1e-12, 1e12),
    "phi": (0, 1e12), "slice_tol": (0, 1e-2), "phase_every": (0, 1000), "res_start": (0.05, 1),
    "res_generations": (1, 1000), "res_merge": (0, 1), "use_prior": (0, 1), "continue_phasing": (0, 1),
    "pixel_weighting": (0, 1), "local_refine": (0, 8), "soft_k": (1, 4096), "soft_tau": (1e-6, 1e6), "soft_generations": (0, 1000),
    "slice_merged": (-1, 2), "slice_phase_cycles": (1, 10000), "phase_average": (1, 100), "start_from_truth": (0, 1),
    "seed": (0, 9e18),
    "nthreads": (0, 1024),
    "match_store_mib": (0, 1e9),
    "merge.nufft_tol": (0, 1e-2), "merge.cg_max_iter": (1, 100000), "merge.cg_tol": (1e-15, 1),
    "merge.fftw_measure": (0, 1), "merge.preconditioner": (0, 1),
    "phase.n_cycles": (0, 10000), "phase.er_before": (0, 100000), "phase.hio": (0, 100000),
    "phase.er_after": (0, 100000), "phase.use_raar": (0, 1), "phase.beta": (0.01, 1),
    "phase.shrinkwrap_sigma": (0, 1e3), "phase.shrinkwrap_threshold": (0, 1), "phase.free_outside_ball": (0, 1),
    "phase.support_threshold": (0, 1),
}
_REFS = ("n_references", "refs_max", "refs_start", "refs_generations")  # the command line's refs_given
_NOT_OPTIONS = ("comm", "on_step", "step_ctx", "first_image", "verbose", "merge.nthreads", "phase.nthreads",
                "phase.seed")


def _fields(struct):
    return {name: t for name, t in struct._fields_}


def _option_names():
    names = {}
    for name, t in _lib.ReconstructOptions._fields_:
        if name in ("merge", "phase"):
            for sub, st in t._fields_:
                names["%s.%s" % (name, sub)] = st
        elif name not in _NOT_OPTIONS:
            names[name] = t
    return {k: v for k, v in names.items() if k not in _NOT_OPTIONS}


_OPTIONS = _option_names()


def _canonical(name):
    """An option's key in _OPTIONS from a C name ('soft_k', 'merge_cg_max_iter',
    'merge.cg_max_iter') or a command-line name ('soft-k', 'generations', 'phase_cycles')."""
    key = name.replace("-", "_")
    if key in CLI_NAMES:
        return CLI_NAMES[key]
    if key in _OPTIONS:
        return key
    for group in ("merge", "phase"):
        if key.startswith(group + "_") and "%s.%s" % (group, key[len(group) + 1:]) in _OPTIONS:
            return "%s.%s" % (group, key[len(group) + 1:])
        if key.startswith(group + ".") and key in _OPTIONS:
            return key
    return None


def default_options():
    """The library's defaults (spf_reconstruct_default_options) as a dict of option names
    to values, before resolution for a model (0 means auto for several; see
    include/spinifel/reconstruct.h)."""
    o = _lib.ReconstructOptions()
    lib.spf_reconstruct_default_options(ctypes.byref(o))
    return _options_dict(o)


def _options_dict(o):
    out = {}
    for key in _OPTIONS:
        if "." in key:
            group, sub = key.split(".")
            out[key] = getattr(getattr(o, group), sub)
        else:
            out[key] = getattr(o, key)
    out["model"] = {-1: "auto", 0: "euclidean", 1: "poisson"}.get(out["model"], out["model"])
    return out


def _set(o, key, value):
    t = _OPTIONS[key]
    if key == "model":
        if isinstance(value, str):
            if value not in MODELS:
                raise Error("option model: must be 'auto', 'poisson' or 'euclidean', got %r" % value)
            value = MODELS[value]
        elif value not in (-1, 0, 1):
            raise Error("option model: must be 'auto', 'poisson' or 'euclidean', got %r" % (value,))
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise Error("option %s: a number expected, got %r" % (key, value)) from None
    if not math.isfinite(v):
        raise Error("option %s: must be finite, got %r" % (key, value))
    if t in (ctypes.c_int, ctypes.c_int64, ctypes.c_uint64):
        if v != int(v):
            raise Error("option %s: an integer expected, got %r" % (key, value))
        value = int(value)
    else:
        value = v
    lo_hi = _RANGES.get(key)
    if lo_hi and not lo_hi[0] <= value <= lo_hi[1]:
        raise Error("option %s: %r is outside [%g, %g]" % (key, value, lo_hi[0], lo_hi[1]))
    if "." in key:
        group, sub = key.split(".")
        setattr(getattr(o, group), sub, value)
    else:
        setattr(o, key, value)


def make_options(**options):
    """A spf_reconstruct_options structure with the library's defaults and the given
    options (C names, command-line names, or merge={...} / phase={...} dicts), and the
    set of the options given. Raises Error for unknown names and bad values."""
    o = _lib.ReconstructOptions()
    lib.spf_reconstruct_default_options(ctypes.byref(o))
    given = set()
    flat = {}
    for name, value in options.items():
        if name in ("merge", "phase") and isinstance(value, dict):
            for sub, v in value.items():
                flat["%s.%s" % (name, sub)] = v
        else:
            flat[name] = value
    for name, value in flat.items():
        key = _canonical(name)
        if key is None:
            raise Error("unknown reconstruct option %r; the options are the fields of spf_reconstruct_options "
                        "(include/spinifel/reconstruct.h; merge_* and phase_* for the nested ones) or the "
                        "command line's names (spinifel reconstruct --help)" % name)
        if key in given:
            raise Error("option %s given twice (as %r)" % (key, name))
        _set(o, key, value)
        given.add(key)
    if o.M % 2 == 0:
        raise Error("option M: must be odd, got %d" % o.M)
    if o.rho_min > o.rho_max:
        raise Error("option rho_min %g exceeds rho_max %g" % (o.rho_min, o.rho_max))
    return o, given


class Result:
    """What reconstruct returns. Volumes are (M, M, M) indexed [z, y, x] (x fastest, as
    in C and in the MRC file), centred at (M-1)/2; per-image arrays follow the images.

    rho            the density (electron density up to scale)
    u              the last merged autocorrelation (intensity() is its 3D intensity)
    u_model        the autocorrelation sliced next; support (uint8) phasing's support
    orientations   (N, 4) quaternions (w, x, y, z); best (N,) reference index (-1: none)
    best_dist, gap (N,) float32: distance to the best reference and the gap to the second
                   (Poisson model: -log L of the best and the log-likelihood gap)
    fluence, entropy (N,): Poisson model per-image fluence and entropy (nats), else 1, NaN
    generations    generations run; n_references: the final grid chosen from the data
                   (0 when given); last_fraction_changed
    model, model_reason  'euclidean' or 'poisson', and why (spf_reconstruct_pick_model)
    options        the resolved options (dict, C names)
    log            one dict per generation (spf_generation_log's fields)
    s_max          largest |s| of a valid pixel (1/m); voxel_angstrom = 1e10 / (2 s_max
                   oversampling); origin (x, y, z) Angstrom of voxel 0: -0.5 (M-1) voxel
    grid           the intensity grid (dict, 1/Angstrom; intensity.h)
    pixels_used    the mask of the pixels used (dead pixels removed); dead_pixels: count
    orientation_error  (median, 90th percentile) degrees against true_orientations, or None
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def intensity(self):
        """The 3D intensity Re FFT(u) on the same centred grid (results.h5's
        'intensity'; spf_intensity_from_autocorrelation), in the data's unit."""
        M = self.u.shape[0]
        out = np.empty_like(self.u)
        with _lib.planner_lock:
            rc = lib.spf_intensity_from_autocorrelation(M, addr(self.u), addr(out))
        check(rc, "intensity")
        return out

    def write_mrc(self, path):
        """density.mrc as `spinifel reconstruct` writes it: rho in float32, voxel and
        origin as above."""
        write_mrc(path, self.rho.astype(np.float32), self.voxel_angstrom, self.origin)

    def write_results(self, path, config=None):
        """results.h5 through spf_results_write, with the layout `spinifel reconstruct`
        writes (docs/outputs.md). config: the text stored as the 'config' attribute
        (default: the resolved options as INI text; the command line stores its own
        configuration file there, which the library does not make)."""
        M = self.rho.shape[0]
        n = self.orientations.shape[0]
        if config is None:
            config = "[reconstruct]\n; written by the spinifel Python binding: spf_reconstruct_options\n" + "".join(
                "%s = %s\n" % (k, v) for k, v in self.options.items())
        grid = _lib.IntensityGrid(**self.grid)
        poisson = self.model == "poisson"
        msg = msgbuf()
        with _lib.planner_lock:
            rc = lib.spf_results_write(path_bytes(path), M, addr(self.rho), addr(self.u), n, addr(self.orientations),
                                       addr(self.best_dist), addr(self.gap), addr(self.fluence) if poisson else None,
                                       addr(self.entropy) if poisson else None, self.voxel_angstrom,
                                       ctypes.byref(grid), self.generations, config.encode(), msg, len(msg))
        check(rc, "write_results", msg)

    def write_outputs(self, outdir):
        """density.mrc and results.h5 into outdir (created if missing)."""
        os.makedirs(outdir, exist_ok=True)
        self.write_mrc(os.path.join(outdir, "density.mrc"))
        self.write_results(os.path.join(outdir, "results.h5"))

    def __repr__(self):
        return ("Result(model=%r, generations=%d, M=%d, images=%d, voxel_angstrom=%.4g, orientation_error=%r)"
                % (self.model, self.generations, self.rho.shape[0], self.orientations.shape[0], self.voxel_angstrom,
                   self.orientation_error))


def _log_dict(g, voxel):
    d = {name: getattr(g, name) for name, _ in _lib.GenerationLog._fields_ if name != "refs_choice"}
    d["model"] = _MODEL_NAMES.get(g.model, g.model)
    rc = g.refs_choice
    if rc.n_references > 0:
        d.update(refs_chosen=rc.n_references, particle_voxels=rc.particle_voxels,
                 particle_diameter_angstrom=rc.particle_voxels * voxel, refs_ball_radius_deg=rc.ball_radius_deg,
                 refs_clamped=rc.clamped)
    return d


def _finite(a, name):
    if not np.isfinite(a).all():
        raise Error("%s: holds NaN or infinite values" % name)


def reconstruct(images, s, mask=None, progress=None, step=None, true_orientations=None, mask_dead=True, **options):
    """Reconstruct orientations and the 3D density from diffraction images (M-TIP,
    spf_reconstruct), as `spinifel reconstruct` does once it has read its dataset.

    images: (N, ny, nx) (or (N, n_pixels)) photons per pixel; s: (ny, nx, 3) (or
    (n_pixels, 3)) scattering vectors in 1/m; mask: valid pixels (non-zero; default all).
    Only valid pixels take part, in their flat order. Like the command line:
      - photon counts: valid pixels that saw no photon in any image while their
        neighbours did are dropped (spf_dead_pixels; mask_dead=False keeps them);
      - the model is picked from the data (spf_reconstruct_pick_model; model= forces it);
      - the Poisson model uses EMC's 3,240 references and no schedule unless one of
        n_references, refs_max, refs_start, refs_generations is given;
      - the options are resolved for the model (spf_reconstruct_resolve).
    options: the fields of spf_reconstruct_options (include/spinifel/reconstruct.h), by
    their C name (M, n_references, max_generations, soft_k, seed, nthreads, ...; nested
    ones as merge_cg_max_iter, phase_n_cycles or merge={...}, phase={...}) or the command
    line's name (generations, refs, refs_start, soft_gens, phase_cycles, cg_iterations,
    threads, ...; `spinifel reconstruct --help`); model: 'auto', 'poisson', 'euclidean'.
    The same options, seed and threads as a command-line run give the same result, bit for bit.

    progress(log): called after each generation with a dict of its figures
    (spf_generation_log: generation, fraction_changed, cg_iterations, phase_error,
    median_orientation_error_deg, t_slice_match, ...); a true return value stops the run
    there (the result is that generation's). step(generation, name, done, total): progress
    within a generation ('slice+match', 'merge', 'phase'). An exception raised in either
    (KeyboardInterrupt included) stops the run at the end of the generation and is raised.
    true_orientations (N, 4): the truth, for the log's orientation error (and
    start_from_truth). Returns a Result."""
    images, s, mask, shape = _pixels(None, images, s, mask)
    o, given = make_options(**options)
    n = images.shape[0]
    if n < 1:
        raise Error("reconstruct: no images")
    n_all_pix = int(np.prod(shape))
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
        raise Error("images: real numbers expected, got dtype %s" % images.dtype)
    flat_mask = np.ascontiguousarray(np.asarray(mask).reshape(n_all_pix) != 0, dtype=np.uint8)
    valid = flat_mask.astype(bool)
    s_all = np.ascontiguousarray(np.asarray(s, dtype=np.float64).reshape(n_all_pix, 3))
    _finite(s_all[valid], "s")
    img = np.ascontiguousarray(images.reshape(n, n_all_pix)[:, valid], dtype=np.float32)
    _finite(img, "images")
    sv = np.ascontiguousarray(s_all[valid])
    q_true = None
    if true_orientations is not None:
        q_true = np.ascontiguousarray(true_orientations, dtype=np.float64)
        if q_true.shape != (n, 4):
            raise Error("true_orientations: expected shape (%d, 4), got %s" % (n, q_true.shape))
        _finite(q_true, "true_orientations")
    if o.start_from_truth and q_true is None:
        raise Error("reconstruct: start_from_truth needs true_orientations")
    M = o.M
    grid = _lib.IntensityGrid()
    if lib.spf_intensity_grid_make(M, o.oversampling, n_all_pix, addr(s_all), addr(flat_mask), ctypes.byref(grid)):
        raise Error("reconstruct: no valid pixel, or a pixel position that is not finite", 14)
    comm = _lib.Comm()
    lib.spf_comm_world(ctypes.byref(comm))
    o.comm = ctypes.pointer(comm)
    # Photon counts only: the command line's dead-pixel masking (app/cmd_reconstruct.c).
    used = flat_mask
    n_dead = 0
    if mask_dead:
        ny, nx = shape if len(shape) == 2 else (1, n_all_pix)
        not_counts, mean = ctypes.c_int64(), ctypes.c_double()
        nv = img.shape[1]
        check(lib.spf_photon_count_stats(o.comm, n, nv, addr(img), ctypes.byref(not_counts), ctypes.byref(mean)),
              "reconstruct: masking photon-less pixels")
        if not_counts.value == 0:
            sums = np.zeros(n_all_pix, dtype=np.float64)
            sums[valid] = img.astype(np.int64).sum(axis=0)
            dead = np.zeros(n_all_pix, dtype=np.uint8)
            nd = ctypes.c_int64()
            check(lib.spf_dead_pixels(nx, ny, addr(flat_mask), addr(sums), math.log(nv) + math.log(1e6), addr(dead),
                                      ctypes.byref(nd)), "reconstruct: masking photon-less pixels")
            if nd.value > 0:
                n_dead = nd.value
                live = dead[valid] == 0
                img = np.ascontiguousarray(img[:, live])
                sv = np.ascontiguousarray(sv[live])
                used = np.ascontiguousarray((flat_mask != 0) & (dead == 0), dtype=np.uint8)
                if lib.spf_intensity_grid_make(M, o.oversampling, n_all_pix, addr(s_all), addr(used),
                                               ctypes.byref(grid)):
                    raise Error("reconstruct: masking photon-less pixels: no pixel left", 14)
    nv = img.shape[1]
    model = ctypes.c_int(0)
    why = ctypes.create_string_buffer(256)
    rc = lib.spf_reconstruct_pick_model(n, nv, addr(img), ctypes.byref(o), ctypes.byref(model), why, len(why))
    check(rc, "reconstruct", why)
    o.model = model.value
    if model.value == MODELS["poisson"] and not given.intersection(_REFS):
        o.n_references, o.refs_start = 3240, 0
    check(lib.spf_reconstruct_resolve(ctypes.byref(o), model.value), "reconstruct: options")
    s_max = float(lib.spf_s_max(sv.shape[0], addr(sv)))  # the command line's rounding
    voxel = 1e10 / (2.0 * s_max * o.oversampling)
    o.verbose = 0
    o.first_image = 0
    raised, log = [], []

    def on_step(ctx, gen, name, done, total):
        if raised:
            return
        try:
            step(gen, name.decode(), done, total)
        except BaseException as e:
            raised.append(e)

    def on_generation(ctx, g, st):
        if raised:
            return 1
        entry = _log_dict(g.contents, voxel)
        log.append(entry)
        if progress is None:
            return 0
        try:
            return 1 if progress(entry) else 0
        except BaseException as e:
            raised.append(e)
            return 1

    step_fn = _lib.STEP_FN(on_step) if step else _lib.STEP_FN()
    o.on_step = step_fn
    gen_fn = _lib.GENERATION_FN(on_generation)
    st = _lib.RunState()
    check(lib.spf_run_state_make(M, n, ctypes.byref(st)), "reconstruct: state for %d images" % n)
    try:
        with _lib.planner_lock:
            rc = lib.spf_reconstruct(n, nv, addr(img), addr(sv), addr(q_true), ctypes.byref(o), None, gen_fn, None,
                                     ctypes.byref(st))
        if raised:
            raise raised[0]
        check(rc, "reconstruct")
        M3 = (M, M, M)
        res = Result(
            rho=as_array(st.rho, M3, np.float64), u=as_array(st.u, M3, np.float64),
            u_model=as_array(st.u_model, M3, np.float64), support=as_array(st.support, M3, np.uint8),
            orientations=as_array(st.orientations, (n, 4), np.float64), best=as_array(st.best, (n,), np.int64),
            best_dist=as_array(st.best_dist, (n,), np.float32), gap=as_array(st.gap, (n,), np.float32),
            fluence=as_array(st.fluence, (n,), np.float64), entropy=as_array(st.entropy, (n,), np.float32),
            generations=st.generation, have_model=st.have_model, n_references=st.n_references,
            last_fraction_changed=st.last_fraction_changed)
    finally:
        lib.spf_run_state_free(ctypes.byref(st))
    res.model = _MODEL_NAMES[model.value]
    res.model_reason = why.value.decode(errors="replace")
    res.options = _options_dict(o)
    res.log = log
    res.s_max = s_max
    res.voxel_angstrom = voxel
    res.origin = np.full(3, -0.5 * (M - 1) * voxel)
    res.grid = {name: getattr(grid, name) for name, _ in _lib.IntensityGrid._fields_}
    res.pixels_used = used.reshape(shape)
    res.dead_pixels = n_dead
    res.orientation_error = orientation_error(q_true, res.orientations) if q_true is not None else None
    return res


def _half(n_all, seed, half):
    """The command line's --half split: image indices of half 1 or 2, in file order
    (a Fisher-Yates permutation from spf_rng (seed, stream 0x5EED5EED))."""
    r = _lib.Rng()
    lib.spf_rng_seed(ctypes.byref(r), seed, 0x5EED5EED)
    perm = list(range(n_all))
    for i in range(n_all - 1, 0, -1):
        j = lib.spf_rng_next(ctypes.byref(r)) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    keep = np.zeros(n_all, dtype=bool)
    for k in range(n_all):
        keep[perm[k]] = (k < n_all // 2) == (half == 1)
    return np.flatnonzero(keep)


def reconstruct_dataset(path, outdir=None, detector=None, progress=None, step=None, images=0, half=0, mask_dead=True,
                        **options):
    """`spinifel reconstruct DATA -o OUTDIR [options]` through the library: read the
    dataset (read_dataset; an EMC photon file with detector=), keep the first `images`
    images (0: all) or one half of a seeded random split (half=1 or 2, as --half), then
    reconstruct() with the file's true orientations for the log, and with outdir write
    density.mrc (the command line's bytes) and results.h5 (its layout; the 'config'
    attribute holds the resolved options, not the command line's config.ini). The
    command line also writes config.ini, log.jsonl, checkpoint.h5 and pictures; this does
    not. Returns the Result."""
    d = read_dataset(path, detector)
    n_all = d.images.shape[0]
    images, half = int(images), int(half)
    if images < 0 or half not in (0, 1, 2):
        raise Error("reconstruct_dataset: images must be >= 0 and half 0, 1 or 2")
    if 0 < images < n_all:
        n_all = images
    sel = np.arange(n_all)
    if half:
        if n_all < 4:
            raise Error("reconstruct_dataset: half needs at least 4 images")
        o, _ = make_options(**options)
        sel = _half(n_all, o.seed, half)
    q = d.orientations[sel] if d.orientations is not None else None
    opts = dict(options)
    start = opts.get("start_from_truth", opts.get("start-from-truth", 0))
    if start and q is None:
        raise Error("reconstruct_dataset: start_from_truth: %s holds no orientations" % path)
    res = reconstruct(d.images[sel], d.s, d.mask, progress=progress, step=step, true_orientations=q,
                      mask_dead=mask_dead, **opts)
    if outdir is not None:
        res.write_outputs(outdir)
    return res


def read_results(path, n_images=None):
    """Read a results.h5 (or an intensity file, which has only 'intensity') through the
    library (results.h: spf_intensity_read, spf_results_read_volume,
    spf_results_read_orientations): a dict with intensity, grid (dict, 1/Angstrom), unit,
    and for a results file density and autocorrelation ((M, M, M) float64, [z, y, x]) and,
    given n_images (the file's count, which the library checks), orientations (n, 4)."""
    ptr = ctypes.c_void_p()
    grid = _lib.IntensityGrid()
    unit = ctypes.create_string_buffer(256)
    msg = msgbuf()
    check(lib.spf_intensity_read(path_bytes(path), ctypes.byref(ptr), ctypes.byref(grid), unit, len(unit), msg,
                                 len(msg)), "read_results", msg)
    M = grid.M
    try:
        out = {"intensity": as_array(ptr, (M, M, M), np.float64)}
    finally:
        _lib.c_free(ptr.value)
    out["grid"] = {name: getattr(grid, name) for name, _ in _lib.IntensityGrid._fields_}
    out["unit"] = unit.value.decode(errors="replace")
    for name in ("density", "autocorrelation"):
        vol = np.empty((M, M, M), dtype=np.float64)
        rc = lib.spf_results_read_volume(path_bytes(path), name.encode(), M, addr(vol), msg, len(msg))
        if rc == 0:
            out[name] = vol
    if n_images is not None:
        q = np.empty((int(n_images), 4), dtype=np.float64)
        check(lib.spf_results_read_orientations(path_bytes(path), int(n_images), addr(q), msg, len(msg)),
              "read_results", msg)
        out["orientations"] = q
    return out


def orientation_error(q_true, q):
    """(median, 90th percentile) angle in degrees between found orientations q and the
    true ones (n, 4 quaternions w x y z each), after fitting the global rotation between
    the frames; either Friedel twin counts (orientation_error.h)."""
    a = np.ascontiguousarray(q_true, dtype=np.float64)
    b = np.ascontiguousarray(q, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 4 or a.shape != b.shape:
        raise Error("orientation_error: two (n, 4) arrays of quaternions expected, got %s and %s"
                    % (a.shape, b.shape))
    if a.shape[0] < 1:
        raise Error("orientation_error: no orientations")
    _finite(a, "q_true")
    _finite(b, "q")
    p90 = ctypes.c_double()
    med = lib.spf_orientation_error_median(a.shape[0], addr(a), addr(b), ctypes.byref(p90))
    if math.isnan(med):
        raise Error("orientation_error: the library returned NaN (out of memory?)")
    return med, p90.value
