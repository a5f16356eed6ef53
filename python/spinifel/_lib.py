"""Loading libspinifel.so and its C declarations for ctypes (internal).

Every structure here mirrors one of include/spinifel/*.h field by field; check_layouts()
(run at import) fills the larger ones through the library's own default functions and
compares them with the documented defaults, so a header that changed without this file
fails at import instead of handing C a misshapen structure.
"""
import ctypes
import ctypes.util
import os
import threading

import numpy as np

c_int, c_double, c_float, c_char_p, c_void_p = (ctypes.c_int, ctypes.c_double, ctypes.c_float,
                                                ctypes.c_char_p, ctypes.c_void_p)
i64, u64, u8, sz = ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint8, ctypes.c_size_t
P = ctypes.POINTER

# FFTW's planner is not thread-safe and ctypes releases the GIL during C calls: every
# call that makes or destroys FFTW plans (NUFFT plans, reconstruct, align, ...) holds this.
planner_lock = threading.RLock()


class Error(Exception):
    """An error reported by libspinifel (or a bad argument caught before calling it).

    ``code`` is the library's error code (include/spinifel/error.h; 0 when the binding
    refused the input itself), ``str(e)`` the one-line message."""

    def __init__(self, message, code=0):
        super().__init__(message)
        self.code = code


# ---- structures (include/spinifel/*.h) ----------------------------------------------

class NufftOpts(ctypes.Structure):  # nufft.h: spf_nufft_opts
    _fields_ = [("modeord", c_int), ("upsampfac", c_double), ("nthreads", c_int), ("fftw_measure", c_int),
                ("kernel_eval", c_int), ("sort", c_int), ("max_subproblem", c_int), ("pow2_fine_grid", c_int),
                ("deterministic", c_int)]


class NufftInfo(ctypes.Structure):  # nufft.h: spf_nufft_info
    _fields_ = [("type", c_int), ("dim", c_int), ("width", c_int), ("poly_degree", c_int), ("beta", c_double),
                ("upsampfac", c_double), ("n_modes", i64 * 3), ("n_fine", i64 * 3), ("n_points", i64),
                ("nthreads", c_int)]


class Comm(ctypes.Structure):  # mpi.h: spf_comm
    _fields_ = [("rank", c_int), ("size", c_int), ("active", c_int)]


class MergeOptions(ctypes.Structure):  # merging.h: spf_merge_options
    _fields_ = [("nufft_tol", c_double), ("cg_max_iter", c_int), ("cg_tol", c_double), ("nthreads", c_int),
                ("fftw_measure", c_int), ("preconditioner", c_int)]


class PhaseOptions(ctypes.Structure):  # phasing.h: spf_phase_options
    _fields_ = [("n_cycles", c_int), ("er_before", c_int), ("hio", c_int), ("er_after", c_int),
                ("use_raar", c_int), ("beta", c_double), ("shrinkwrap_sigma", c_double),
                ("shrinkwrap_threshold", c_double), ("free_outside_ball", c_int), ("support_threshold", c_double),
                ("seed", u64), ("nthreads", c_int)]


STEP_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p, i64, i64)  # reconstruct.h: spf_step_fn


class ReconstructOptions(ctypes.Structure):  # reconstruct.h: spf_reconstruct_options
    _fields_ = [("model", c_int), ("poisson_mean", c_double), ("beta_start", c_double),
                ("beta_min_spread", c_double), ("beta_max", c_double), ("beta_period", c_int),
                ("update_fluence", c_int), ("model_floor", c_double), ("positive_intensity", c_int),
                ("M", i64), ("oversampling", c_double), ("n_references", i64), ("refs_max", i64),
                ("refs_start", i64), ("refs_generations", c_int), ("ref_batch", i64), ("max_generations", c_int),
                ("stop_fraction", c_double), ("n_rho", c_int), ("rho_min", c_double), ("rho_max", c_double),
                ("phi", c_double), ("slice_tol", c_double), ("phase_every", c_int), ("res_start", c_double),
                ("res_generations", c_int), ("res_merge", c_int), ("use_prior", c_int),
                ("continue_phasing", c_int), ("pixel_weighting", c_int), ("soft_k", c_int),
                ("soft_tau", c_double), ("soft_generations", c_int), ("local_refine", c_int), ("slice_merged", c_int),
                ("slice_phase_cycles", c_int), ("phase_average", c_int),
                ("start_from_truth", c_int), ("merge", MergeOptions), ("phase", PhaseOptions), ("seed", u64),
                ("nthreads", c_int), ("verbose", c_int), ("comm", P(Comm)), ("first_image", i64),
                ("match_store_mib", i64), ("on_step", STEP_FN), ("step_ctx", c_void_p),
                ("fixed_views", c_void_p)]


class ReferenceChoice(ctypes.Structure):  # reconstruct.h: spf_reference_choice
    _fields_ = [("n_references", i64), ("particle_voxels", c_double), ("ball_radius_deg", c_double),
                ("clamped", c_int)]


class GenerationLog(ctypes.Structure):  # reconstruct.h: spf_generation_log
    _fields_ = [("generation", c_int), ("model", c_int), ("n_references", i64), ("refs_choice", ReferenceChoice),
                ("fraction_changed", c_double), ("beta", c_double), ("mean_entropy", c_double),
                ("median_gap", c_double), ("median_spread", c_double), ("negative_fraction", c_double),
                ("median_orientation_error_deg", c_double), ("p90_orientation_error_deg", c_double),
                ("cg_iterations", c_int), ("cg_residual", c_double), ("rho_chosen", c_double),
                ("phase_error", c_double), ("support_size", i64), ("t_slice_match", c_double),
                ("t_merge", c_double), ("t_phase", c_double), ("t_slice", c_double), ("t_likelihood", c_double),
                ("t_views", c_double), ("t_merge_points", c_double), ("t_reduce", c_double), ("t_ring", c_double),
                ("rechecks", i64)]


class RunState(ctypes.Structure):  # results.h: spf_run_state
    _fields_ = [("M", i64), ("n_images", i64), ("generation", c_int), ("have_model", c_int),
                ("last_fraction_changed", c_double), ("n_references", i64), ("orientations", P(c_double)),
                ("best", P(i64)), ("best_dist", P(c_float)), ("gap", P(c_float)), ("fluence", P(c_double)),
                ("entropy", P(c_float)), ("rho", P(c_double)), ("u", P(c_double)), ("u_model", P(c_double)),
                ("support", P(u8)), ("rho_next", P(c_double)), ("support_next", P(u8)),
                ("posterior_k", c_int), ("posterior_ref", P(ctypes.c_int32)), ("posterior_p", P(ctypes.c_float))]


GENERATION_FN = ctypes.CFUNCTYPE(c_int, c_void_p, P(GenerationLog), P(RunState))  # spf_generation_fn


class IntensityGrid(ctypes.Structure):  # intensity.h: spf_intensity_grid
    _fields_ = [("M", i64), ("oversampling", c_double), ("s_max_inv_angstrom", c_double),
                ("voxel_inv_angstrom", c_double), ("corner_inv_angstrom", c_double),
                ("edge_inv_angstrom", c_double), ("beamstop_inv_angstrom", c_double)]


class DatasetHeader(ctypes.Structure):  # dataset.h: spf_dataset_header
    _fields_ = [("n_images", i64), ("ny", i64), ("nx", i64), ("photon_energy_ev", c_double),
                ("distance_m", c_double), ("pixel_size_m", c_double), ("has_orientations", c_int),
                ("compression", c_int), ("generator", ctypes.c_char * 1024)]


class Dataset(ctypes.Structure):  # dataset.h: spf_dataset
    _fields_ = [("h", DatasetHeader), ("n_pixels", i64), ("s", P(c_double)), ("mask", P(u8)), ("is_cxi", c_int),
                ("path", ctypes.c_char * 1024), ("file_id", i64), ("data_id", i64), ("quat_id", i64),
                ("photons", c_void_p)]


class DetectorGeometry(ctypes.Structure):  # detector.h: spf_detector_geometry
    _fields_ = [("nx", i64), ("ny", i64), ("pixel_size_m", c_double), ("distance_m", c_double),
                ("photon_energy_ev", c_double), ("beam_center_x", c_double), ("beam_center_y", c_double),
                ("beamstop_inv_m", c_double), ("polarization", c_int)]


class Detector(ctypes.Structure):  # detector.h: spf_detector
    _fields_ = [("g", DetectorGeometry), ("n_pixels", i64), ("wavelength_m", c_double), ("s", P(c_double)),
                ("s_norm", P(c_double)), ("solid_angle", P(c_double)), ("polarization", P(c_double)),
                ("mask", P(u8)), ("s_max", c_double), ("resolution_edge_m", c_double),
                ("resolution_corner_m", c_double)]


class Molecule(ctypes.Structure):  # molecule.h: spf_molecule
    _fields_ = [("n_atoms", i64), ("xyz", P(c_double)), ("z", P(c_int)), ("occupancy", P(c_double)),
                ("b_factor", P(c_double))]


class PdbOptions(ctypes.Structure):  # molecule.h: spf_pdb_options
    _fields_ = [("include_hetatm", c_int), ("include_water", c_int), ("assembly", c_int)]


class GaussianFormFactor(ctypes.Structure):  # scattering.h: spf_gaussian_form_factor
    _fields_ = [("a", c_double * 5), ("b", c_double * 5), ("c", c_double)]


class SimPixels(ctypes.Structure):  # simulate.h: spf_sim_pixels
    _fields_ = [("n_pixels", i64), ("s_inv_m", c_void_p), ("weight_sr", c_void_p), ("mask", c_void_p)]


class SimulateOptions(ctypes.Structure):  # simulate.h: spf_simulate_options
    _fields_ = [("n_images", i64), ("seed", u64), ("fluence", c_double), ("fluence_jitter", c_double),
                ("background", c_double), ("poisson", c_int), ("batch_images", c_int), ("nthreads", c_int)]


class SimulateTiming(ctypes.Structure):  # simulate.h: spf_simulate_timing
    _fields_ = [("slicing", c_double), ("noise", c_double), ("output", c_double)]


IMAGE_SINK = ctypes.CFUNCTYPE(c_int, c_void_p, i64, i64, P(c_float), P(c_double))  # spf_image_sink
SIM_PROGRESS_FN = ctypes.CFUNCTYPE(None, c_void_p, i64, i64)  # simulate.h: spf_progress_fn


class AlignOptions(ctypes.Structure):  # align.h: spf_align_options
    _fields_ = [("n_rotations", i64), ("refine_steps", c_int), ("nthreads", c_int), ("start", c_double * 4)]


class AlignResult(ctypes.Structure):  # align.h: spf_align_result
    _fields_ = [("correlation", c_double), ("quat", c_double * 4), ("inverted", c_int), ("shift", c_int * 3)]


class ShellcorrOptions(ctypes.Structure):  # shellcorr.h: spf_shellcorr_options
    _fields_ = [("n_rotations", i64), ("n_candidates", c_int), ("refine_steps", c_int), ("r_min", c_double),
                ("r_max", c_double), ("interpolation", c_int), ("nthreads", c_int)]


class ShellcorrResult(ctypes.Structure):  # shellcorr.h: spf_shellcorr_result
    _fields_ = [("score", c_double), ("search_score", c_double), ("quat", c_double * 4),
                ("precision_deg", c_double), ("evaluations", i64)]


class Rng(ctypes.Structure):  # random.h: spf_rng
    _fields_ = [("s", u64 * 4)]


# ---- prototypes -----------------------------------------------------------------------

vp = c_void_p  # arrays are passed as raw addresses, after the binding checked dtype and layout
_PROTOTYPES = {
    "spf_strerror": (c_char_p, [c_int]),
    "spf_comm_world": (None, [P(Comm)]),
    "spf_mpi_available": (c_int, []),
    # nufft.h
    "spf_nufft_default_opts": (None, [P(NufftOpts)]),
    "spf_nufft_make_plan": (c_int, [c_int, c_int, vp, c_int, c_int, c_double, P(NufftOpts), P(vp)]),
    "spf_nufftf_make_plan": (c_int, [c_int, c_int, vp, c_int, c_int, c_double, P(NufftOpts), P(vp)]),
    "spf_nufft_set_points": (c_int, [vp, i64, vp, vp, vp]),
    "spf_nufftf_set_points": (c_int, [vp, i64, vp, vp, vp]),
    "spf_nufft_execute": (c_int, [vp, vp, vp]),
    "spf_nufftf_execute": (c_int, [vp, vp, vp]),
    "spf_nufft_destroy": (None, [vp]),
    "spf_nufftf_destroy": (None, [vp]),
    "spf_nufft_get_info": (None, [vp, P(NufftInfo)]),
    "spf_nufftf_get_info": (None, [vp, P(NufftInfo)]),
    "spf_nufft_direct": (c_int, [c_int, c_int, vp, c_int, c_int, i64, vp, vp, vp, vp, vp]),
    # reconstruct.h, results.h, merging.h, phasing.h
    "spf_merge_default_options": (None, [P(MergeOptions)]),
    "spf_phase_default_options": (None, [P(PhaseOptions)]),
    "spf_reconstruct_default_options": (None, [P(ReconstructOptions)]),
    "spf_reconstruct_resolve": (c_int, [P(ReconstructOptions), c_int]),
    "spf_reconstruct_pick_model": (c_int, [i64, i64, vp, P(ReconstructOptions), P(c_int), c_char_p, sz]),
    "spf_photon_count_stats": (c_int, [P(Comm), i64, i64, vp, P(i64), P(c_double)]),
    "spf_reconstruct": (c_int, [i64, i64, vp, vp, vp, P(ReconstructOptions), P(RunState), GENERATION_FN, vp,
                                P(RunState)]),
    "spf_run_state_make": (c_int, [i64, i64, P(RunState)]),
    "spf_run_state_free": (None, [P(RunState)]),
    "spf_results_write": (c_int, [c_char_p, i64, vp, vp, i64, vp, vp, vp, vp, vp, c_double, P(IntensityGrid), c_int,
                                  c_char_p, c_char_p, sz]),
    "spf_intensity_from_autocorrelation": (c_int, [i64, vp, vp]),
    "spf_intensity_read": (c_int, [c_char_p, P(vp), P(IntensityGrid), c_char_p, sz, c_char_p, sz]),
    "spf_results_read_volume": (c_int, [c_char_p, c_char_p, i64, vp, c_char_p, sz]),
    "spf_results_read_orientations": (c_int, [c_char_p, i64, vp, c_char_p, sz]),
    "spf_intensity_grid_make": (c_int, [i64, c_double, i64, vp, vp, P(IntensityGrid)]),
    "spf_dead_pixels": (c_int, [i64, i64, vp, vp, c_double, vp, P(i64)]),
    "spf_autocorrelation": (c_int, [i64, vp, vp, c_int]),
    # dataset.h
    "spf_dataset_open": (c_int, [c_char_p, P(P(Dataset)), c_char_p, sz]),
    "spf_dataset_open_emc": (c_int, [c_char_p, c_char_p, P(P(Dataset)), c_char_p, sz]),
    "spf_dataset_read_images": (c_int, [P(Dataset), i64, i64, vp, vp, c_char_p, sz]),
    "spf_dataset_close_reader": (None, [P(Dataset)]),
    "spf_dataset_create": (c_int, [c_char_p, P(DatasetHeader), P(vp), c_char_p, sz]),
    "spf_dataset_write_geometry": (c_int, [vp, vp, vp]),
    "spf_dataset_write_images": (c_int, [vp, i64, i64, vp, vp]),
    "spf_dataset_close": (c_int, [vp, c_char_p, sz]),
    "spf_dataset_abort": (None, [vp]),
    # molecule.h, scattering.h, detector.h, simulate.h
    "spf_pdb_default_options": (None, [P(PdbOptions)]),
    "spf_molecule_read_pdb": (c_int, [c_char_p, P(PdbOptions), P(P(Molecule)), c_char_p, sz]),
    "spf_molecule_phantom": (c_int, [u64, i64, P(P(Molecule))]),
    "spf_molecule_free": (None, [P(Molecule)]),
    "spf_molecule_size": (None, [P(Molecule), P(c_double), P(c_double)]),
    "spf_molecule_centre": (None, [P(Molecule)]),
    "spf_molecule_scattering_types": (c_int, [P(Molecule), vp, P(GaussianFormFactor), P(c_int)]),
    "spf_scattering_make": (c_int, [i64, vp, vp, c_int, P(GaussianFormFactor), c_double, c_double, c_int, P(vp)]),
    "spf_scattering_free": (None, [vp]),
    "spf_scattering_density": (c_int, [i64, vp, vp, c_int, P(GaussianFormFactor), c_double, i64, c_double, vp,
                                       c_int, vp]),
    "spf_detector_default_geometry": (None, [P(DetectorGeometry)]),
    "spf_detector_make": (c_int, [P(DetectorGeometry), P(P(Detector))]),
    "spf_detector_bin2": (c_int, [P(Detector), P(P(Detector))]),
    "spf_detector_free": (None, [P(Detector)]),
    "spf_s_max": (c_double, [i64, vp]),
    "spf_simulate_default_options": (None, [P(SimulateOptions)]),
    "spf_simulate_images": (c_int, [vp, P(SimPixels), P(SimulateOptions), IMAGE_SINK, vp, SIM_PROGRESS_FN, vp,
                                    P(SimulateTiming)]),
    "spf_intensity_of_molecule": (c_int, [i64, vp, vp, c_int, P(GaussianFormFactor), P(IntensityGrid), c_double,
                                          c_double, c_int, vp]),
    # mrc.h, fsc.h, align.h, orientation_error.h, shellcorr.h, random.h
    "spf_mrc_write": (c_int, [c_char_p, vp, i64, i64, i64, c_double, vp, c_char_p, sz]),
    "spf_mrc_read": (c_int, [c_char_p, P(vp), vp, P(c_double), vp, c_char_p, sz]),
    "spf_fsc": (c_int, [i64, vp, vp, vp]),
    "spf_fsc_resolution": (c_double, [i64, vp, c_double, c_double]),
    "spf_fsc_resolution_outer": (c_double, [i64, vp, c_double, c_double]),
    "spf_reference_density": (c_int, [P(Molecule), i64, c_double, c_int, vp]),
    "spf_align_default_options": (None, [P(AlignOptions)]),
    "spf_align": (c_int, [i64, vp, vp, P(AlignOptions), P(AlignResult), vp]),
    "spf_rotate_volume": (None, [i64, vp, vp, c_int, vp]),
    "spf_orientation_error_median": (c_double, [i64, vp, vp, P(c_double)]),
    "spf_shellcorr_default_options": (None, [P(ShellcorrOptions)]),
    "spf_shellcorr_align": (c_int, [i64, vp, vp, P(ShellcorrOptions), P(ShellcorrResult), vp]),
    "spf_shell_correlation": (c_int, [i64, vp, vp, c_double, c_double, vp, vp]),
    "spf_rng_seed": (None, [P(Rng), u64, u64]),
    "spf_rng_next": (u64, [P(Rng)]),
}


def _candidates():
    """SPINIFEL_LIB if set (only it); else the repository's build/libspinifel.so; else
    whatever ctypes.util.find_library finds on the system's library path."""
    env = os.environ.get("SPINIFEL_LIB")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.normpath(os.path.join(here, "..", "..", "build", "libspinifel.so"))]
    lib = ctypes.util.find_library("spinifel")
    if lib:
        found.append(lib)
    return found


def _load():
    # As the command line does for itself (app/main.c): OpenMP threads that wait at a
    # barrier sleep instead of spinning, unless the user chose. On a shared machine
    # spinning threads took the cores the others needed (5x slower small runs, the same
    # bits). libgomp reads the variable when it is loaded, i.e. with the library, so this
    # acts unless something loaded libgomp before.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    tried = []
    for path in _candidates():
        if os.path.isabs(path) and not os.path.exists(path):
            tried.append("%s (no such file)" % path)
            continue
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    else:
        raise ImportError("spinifel: cannot load libspinifel.so; build it (bash tools/build.sh) or set "
                          "SPINIFEL_LIB to its path. Tried: " + "; ".join(tried))
    for name, (res, args) in _PROTOTYPES.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    return lib


lib = _load()
LIB_PATH = lib._name
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [c_void_p]
_libc.free.restype = None


def c_free(address):
    """free() of memory the library malloc'ed for the caller."""
    _libc.free(address)


def strerror(code):
    return lib.spf_strerror(code).decode()


def check(rc, what, msg=None):
    """Raise Error for a non-zero return code: the library's message (msg buffer) when it
    wrote one, else spf_strerror(rc); what names the call."""
    if rc:
        text = msg.value.decode(errors="replace") if msg is not None else ""
        raise Error("%s: %s" % (what, text if text else strerror(rc)), rc)


def msgbuf():
    return ctypes.create_string_buffer(1024)


def addr(a):
    """The address of a C-contiguous numpy array (None for None)."""
    if a is None:
        return None
    assert a.flags["C_CONTIGUOUS"], "internal: non-contiguous buffer"
    return a.ctypes.data


def as_array(ptr, shape, dtype):
    """A copy of C memory as a numpy array."""
    n = int(np.prod(shape))
    if n == 0:
        return np.zeros(shape, dtype)
    buf = (ctypes.c_char * (n * np.dtype(dtype).itemsize)).from_address(ctypes.cast(ptr, c_void_p).value)
    return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()


def path_bytes(path):
    if isinstance(path, bytes):
        return path
    return os.fsencode(os.fspath(path))


# ---- layout checks ------------------------------------------------------------------------

def _guarded(cls, fill):
    """An instance of cls inside a buffer 64 bytes longer, filled with a marker: a C
    structure larger than this mirror would write over the marker."""
    size = ctypes.sizeof(cls)
    buf = ctypes.create_string_buffer(bytes([fill]) * (size + 64))
    return cls.from_buffer(buf), buf, size


def check_layouts():
    """Compare the mirrored structures with the library: defaults written by the library
    must read back as documented, and nothing may be written past the mirror's end.
    Raises Error (never returns False)."""
    problems = []

    def expect(name, got, want):
        if got != want and not (isinstance(want, float) and abs(got - want) <= 1e-12 * abs(want)):
            problems.append("%s = %r, expected %r" % (name, got, want))

    def defaults(cls, fill, cname, wants):
        """The library's defaults into a guarded mirror: each field as documented, and
        nothing written past the mirror's end."""
        obj, buf, size = _guarded(cls, 0x5A)
        fill(ctypes.byref(obj))
        if buf.raw[size:size + 64] != bytes([0x5A]) * 64:
            problems.append("%s is larger in C than in python/spinifel/_lib.py" % cname)
        for name, want in wants:
            value = obj
            for part in name.split("."):
                value = getattr(value, part)
            expect("%s.%s" % (cname, name), value, want)
        return obj

    o = defaults(ReconstructOptions, lib.spf_reconstruct_default_options, "spf_reconstruct_options", [
        ("model", -1), ("poisson_mean", 2.0), ("beta_max", 0.5), ("positive_intensity", -1),
        ("M", 31), ("oversampling", 1.0), ("refs_max", 1000000), ("refs_start", 2000),
        ("refs_generations", 16), ("ref_batch", 1000), ("stop_fraction", 0.02), ("n_rho", 5),
        ("rho_min", 1e-3), ("rho_max", 10.0), ("phi", 10.0), ("res_start", 1.0),
        ("res_generations", 5), ("use_prior", 0), ("pixel_weighting", 1), ("soft_k", 64),
        ("soft_tau", 0.3), ("soft_generations", 8), ("local_refine", 3), ("slice_merged", -1),
        ("slice_phase_cycles", 1), ("phase_average", 5), ("seed", 1),
        ("match_store_mib", 4096), ("merge.cg_max_iter", 100), ("merge.cg_tol", 1e-6),
        ("phase.n_cycles", 10), ("phase.beta", 0.3)])
    expect("spf_reconstruct_options.comm", bool(o.comm), False)
    expect("spf_reconstruct_options.step_ctx", o.step_ctx, None)
    defaults(NufftOpts, lib.spf_nufft_default_opts, "spf_nufft_opts", [
        ("modeord", 0), ("upsampfac", 0.0), ("fftw_measure", 1), ("kernel_eval", 1), ("sort", 1),
        ("pow2_fine_grid", -1), ("deterministic", 1)])

    s, buf, size = _guarded(RunState, 0x5A)
    rc = lib.spf_run_state_make(3, 2, ctypes.byref(s))
    if rc == 0:
        if buf.raw[size:size + 64] != bytes([0x5A]) * 64:
            problems.append("spf_run_state is larger in C than in python/spinifel/_lib.py")
        expect("spf_run_state.M", s.M, 3)
        expect("spf_run_state.n_images", s.n_images, 2)
        for name in ("orientations", "best", "best_dist", "gap", "fluence", "entropy", "rho", "u", "u_model",
                     "support", "rho_next", "support_next"):
            if not getattr(s, name):
                problems.append("spf_run_state.%s is NULL after spf_run_state_make" % name)
        lib.spf_run_state_free(ctypes.byref(s))

    defaults(AlignOptions, lib.spf_align_default_options, "spf_align_options",
             [("n_rotations", 4000), ("refine_steps", 7)])
    defaults(DetectorGeometry, lib.spf_detector_default_geometry, "spf_detector_geometry",
             [("nx", 128), ("distance_m", 0.1)])
    defaults(SimulateOptions, lib.spf_simulate_default_options, "spf_simulate_options",
             [("fluence", 1e24), ("poisson", 1), ("batch_images", 64)])
    if problems:
        more = " (and %d more)" % (len(problems) - 4) if len(problems) > 4 else ""
        raise Error("spinifel: the binding's structures do not match %s: %s%s" % (LIB_PATH, "; ".join(problems[:4]),
                                                                                  more))


check_layouts()
