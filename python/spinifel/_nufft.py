"""Non-uniform FFTs of types 1 and 2 (include/spinifel/nufft.h)."""
import ctypes
import threading

import numpy as np

from . import _lib
from ._lib import Error, addr, check, lib

_PREC = {
    "double": (np.float64, np.complex128, "spf_nufft_"),
    "float": (np.float32, np.complex64, "spf_nufftf_"),
}


def _precision(precision):
    if precision in ("double", np.float64, np.complex128, "f8", "d"):
        return _PREC["double"]
    if precision in ("float", "single", np.float32, np.complex64, "f4", "f"):
        return _PREC["float"]
    raise Error("precision must be 'double' or 'float', got %r" % (precision,))


def _modes(n_modes):
    modes = (int(n_modes),) if np.isscalar(n_modes) else tuple(int(n) for n in n_modes)
    if not 1 <= len(modes) <= 3:
        raise Error("n_modes: 1 to 3 mode counts, got %d" % len(modes))
    if min(modes) < 1:
        raise Error("n_modes: every mode count must be >= 1, got %s" % (modes,))
    return modes


def _points(x, dim, real):
    """x as a (dim, n) C-contiguous array of the plan's real type."""
    x = np.asarray(x)
    if x.ndim == 1 and dim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2 or x.shape[0] != dim:
        raise Error("x: expected shape (%d, n_points)%s (one row per dimension), got %s"
                    % (dim, " or (n_points,)" if dim == 1 else "", x.shape))
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise Error("x: real coordinates (radians) expected, got dtype %s" % x.dtype)
    return np.ascontiguousarray(x, dtype=real)


def _dim_of(x):
    x = np.asarray(x)
    if x.ndim == 1:
        return 1
    if x.ndim == 2 and 1 <= x.shape[0] <= 3:
        return x.shape[0]
    raise Error("x: expected shape (dim, n_points) with dim 1, 2 or 3 (or (n_points,) in 1D), got %s" % (x.shape,))


def _strengths(a, shape, complex_type, name):
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.number):
        raise Error("%s: numbers expected, got dtype %s" % (name, a.dtype))
    a = np.ascontiguousarray(a, dtype=complex_type)
    if a.shape != shape:
        raise Error("%s: expected shape %s, got %s" % (name, shape, a.shape))
    if not np.isfinite(a).all():
        raise Error("%s: holds NaN or infinite values" % name)
    return a


class Plan:
    """A NUFFT plan, as in C (spf_nufft_make_plan / spf_nufftf_make_plan): make it once,
    set points, execute as often as needed.

      type 1 (non-uniform to uniform): f[k] = sum_j c[j] exp(i sign k . x_j)
      type 2 (uniform to non-uniform): c[j] = sum_k f[k] exp(i sign k . x_j)

    n_modes = (N1[, N2[, N3]]): mode counts; the mode array f has numpy shape
    (N1, N2, N3) with k1 along axis 0 paired with the first coordinate row x[0] (as
    FINUFFT's Python interface; the binding hands C the axes in reverse, since C stores
    k1 fastest). Modes are centred, k = -floor(N/2) .. ceil(N/2)-1, or FFT-ordered with
    modeord=1. Points x have shape (dim, n_points) in radians, anywhere in [-3 pi, 3 pi).
    n_trans vectors go through per execute (c of shape (n_trans, n_points), f of shape
    (n_trans, N1, ...)). precision 'double' (complex128; tol 1e-14 .. 1e-1) or 'float'
    (complex64; tol 1e-6 .. 1e-1). nthreads 0: all OpenMP threads. The remaining
    keywords are the fields of spf_nufft_opts (upsampfac, fftw_measure, kernel_eval,
    sort, max_subproblem, pow2_fine_grid, deterministic).

    The default fftw_measure=1 plans FFTW with FFTW_MEASURE, as the C library does; FFTW
    keeps what it measured (wisdom) for the rest of the process, and a later plan of the
    same FFT size with FFTW_ESTIMATE (reconstruct's) may reuse it and differ from a fresh
    process in the last bits: pass fftw_measure=0 in a process that must repeat the
    command line's reconstruction bit for bit.

    Use as a context manager, or call close(); the points given to set_points are kept
    by the plan (C reads them at execute)."""

    def __init__(self, type, n_modes, n_trans=1, tol=1e-6, sign=+1, precision="double", nthreads=0, modeord=0,
                 **opts):
        if type not in (1, 2):
            raise Error("type must be 1 or 2, got %r" % (type,))
        if sign not in (1, -1):
            raise Error("sign must be +1 or -1, got %r" % (sign,))
        self.type, self.sign, self.tol = type, int(sign), float(tol)
        self.n_modes = _modes(n_modes)
        self.dim = len(self.n_modes)
        self.n_trans = int(n_trans)
        if self.n_trans < 1:
            raise Error("n_trans must be >= 1, got %d" % self.n_trans)
        self.real, self.complex, self._prefix = _precision(precision)
        self.precision = "double" if self.real == np.float64 else "float"
        o = _lib.NufftOpts()
        lib.spf_nufft_default_opts(ctypes.byref(o))
        o.modeord = int(modeord)
        o.nthreads = int(nthreads)
        names = [f for f, _ in _lib.NufftOpts._fields_]
        for k, v in opts.items():
            if k not in names:
                raise Error("unknown NUFFT option %r (known: %s)" % (k, ", ".join(names)))
            setattr(o, k, v)
        self._opts = o
        modes_c = np.array(self.n_modes[::-1], dtype=np.int64)
        h = ctypes.c_void_p()
        self._h = None
        with _lib.planner_lock:
            rc = getattr(lib, self._prefix + "make_plan")(type, self.dim, addr(modes_c), self.sign, self.n_trans,
                                                          self.tol, ctypes.byref(o), ctypes.byref(h))
        check(rc, "nufft make_plan (type %d, modes %s, tol %g, %s)" % (type, self.n_modes, self.tol, self.precision))
        self._h = h
        self._x = None
        self._lock = threading.Lock()  # a C plan must not be used from two threads at once

    def _fn(self, name):
        return getattr(lib, self._prefix + name)

    def set_points(self, x):
        """Set the non-uniform points: x of shape (dim, n_points) (or (n_points,) in 1D),
        radians in [-3 pi, 3 pi). Converted to the plan's precision and kept."""
        self._check_open()
        xs = _points(x, self.dim, self.real)
        rows = [addr(xs[d]) if xs.shape[1] else None for d in range(self.dim)][::-1] + [None] * (3 - self.dim)
        with self._lock:
            rc = self._fn("set_points")(self._h, xs.shape[1], rows[0], rows[1], rows[2])
            self._x = xs if rc == 0 else None
        check(rc, "nufft set_points")
        return self

    @property
    def n_points(self):
        return 0 if self._x is None else self._x.shape[1]

    def execute(self, data):
        """Type 1: data = c, shape (n_points,) or (n_trans, n_points); returns f of shape
        n_modes (or (n_trans,) + n_modes). Type 2: data = f; returns c."""
        self._check_open()
        if self._x is None:
            raise Error("nufft execute: set_points first", 10)
        n = self._x.shape[1]
        data = np.asarray(data)
        if self.type == 1:
            shape_one, shape_all = (n,), (self.n_trans, n)
            name = "c"
        else:
            shape_one, shape_all = self.n_modes, (self.n_trans,) + self.n_modes
            name = "f"
        batched = data.shape == shape_all and (self.n_trans > 1 or data.ndim == len(shape_all))
        if not batched and not (self.n_trans == 1 and data.shape == shape_one):
            want = shape_all if self.n_trans > 1 else "%s or %s" % (shape_one, shape_all)
            raise Error("nufft execute: %s: expected shape %s, got %s" % (name, want, data.shape))
        data = _strengths(data, data.shape, self.complex, name)
        if self.type == 1:
            c = data
            f = np.empty((self.n_trans,) + self.n_modes, dtype=self.complex)
            out, out_one = f, self.n_modes
        else:
            f = data
            c = np.empty((self.n_trans, n), dtype=self.complex)
            out, out_one = c, (n,)
        with self._lock:
            rc = self._fn("execute")(self._h, addr(c), addr(f))
        check(rc, "nufft execute")
        return out if batched else out.reshape(out_one)

    def info(self):
        """What the plan chose (spf_nufft_info) as a dict: kernel width, beta, fine grid..."""
        self._check_open()
        i = _lib.NufftInfo()
        self._fn("get_info")(self._h, ctypes.byref(i))
        return {"type": i.type, "dim": i.dim, "width": i.width, "poly_degree": i.poly_degree, "beta": i.beta,
                "upsampfac": i.upsampfac, "n_modes": tuple(i.n_modes[:i.dim][::-1]),
                "n_fine": tuple(i.n_fine[:i.dim][::-1]), "n_points": i.n_points, "nthreads": i.nthreads}

    def _check_open(self):
        if not self._h:
            raise Error("nufft: the plan is closed")

    def close(self):
        """Destroy the C plan (also done when the object is collected)."""
        if getattr(self, "_h", None):
            with _lib.planner_lock:
                self._fn("destroy")(self._h)
            self._h = None
            self._x = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def nufft_type1(x, c, n_modes, tol=1e-6, sign=+1, precision="double", nthreads=0, modeord=0, **opts):
    """Type-1 NUFFT (non-uniform to uniform): f[k] = sum_j c[j] exp(i sign k . x_j).

    x: points, shape (dim, n_points) (or (n_points,) in 1D), radians in [-3 pi, 3 pi);
    c: strengths, shape (n_points,) or (n_trans, n_points); n_modes: (N1[, N2[, N3]]).
    Returns f of shape n_modes (or (n_trans,) + n_modes), axis d paired with x[d],
    complex128 or complex64 (precision). tol: requested relative l2 accuracy.
    Other keywords: spf_nufft_opts fields (see Plan)."""
    dim = _dim_of(x)
    modes = _modes(n_modes)
    if len(modes) != dim:
        raise Error("n_modes has %d entries but x has %d coordinate rows" % (len(modes), dim))
    c = np.asarray(c)
    n_trans = c.shape[0] if c.ndim == 2 else 1
    with Plan(1, modes, n_trans, tol, sign, precision, nthreads, modeord, **opts) as p:
        p.set_points(x)
        return p.execute(c)


def nufft_type2(x, f, tol=1e-6, sign=+1, precision="double", nthreads=0, modeord=0, **opts):
    """Type-2 NUFFT (uniform to non-uniform): c[j] = sum_k f[k] exp(i sign k . x_j).

    x: points, shape (dim, n_points) (or (n_points,) in 1D), radians; f: modes of shape
    (N1[, N2[, N3]]) with dim axes, or (n_trans, N1, ...). Returns c of shape
    (n_points,) or (n_trans, n_points). Other arguments as nufft_type1."""
    dim = _dim_of(x)
    f = np.asarray(f)
    if f.ndim == dim:
        modes, n_trans = f.shape, 1
    elif f.ndim == dim + 1:
        modes, n_trans = f.shape[1:], f.shape[0]
    else:
        raise Error("f: expected %d mode axes (or a leading n_trans axis) for %d-dimensional points, got shape %s"
                    % (dim, dim, f.shape))
    with Plan(2, modes, n_trans, tol, sign, precision, nthreads, modeord, **opts) as p:
        p.set_points(x)
        return p.execute(f)


def nufft_direct(type, x, data, n_modes=None, sign=+1, modeord=0):
    """The library's slow, obvious reference (spf_nufft_direct): the same sums evaluated
    directly in double precision, O(n_points x modes). type 1: data = c (n_points,),
    n_modes required, returns f; type 2: data = f (modes), returns c. One vector."""
    dim = _dim_of(x)
    xs = _points(x, dim, np.float64)
    n = xs.shape[1]
    if type == 1:
        modes = _modes(n_modes)
        if len(modes) != dim:
            raise Error("n_modes has %d entries but x has %d coordinate rows" % (len(modes), dim))
        c = _strengths(data, (n,), np.complex128, "c")
        f = np.empty(modes, dtype=np.complex128)
    elif type == 2:
        f = np.asarray(data)
        if f.ndim != dim:
            raise Error("f: expected %d mode axes, got shape %s" % (dim, f.shape))
        modes = _modes(f.shape)
        f = _strengths(f, modes, np.complex128, "f")
        c = np.empty(n, dtype=np.complex128)
    else:
        raise Error("type must be 1 or 2, got %r" % (type,))
    modes_c = np.array(modes[::-1], dtype=np.int64)
    rows = [addr(xs[d]) for d in range(dim)][::-1] + [None] * (3 - dim)
    rc = lib.spf_nufft_direct(type, dim, addr(modes_c), int(sign), int(modeord), n, rows[0], rows[1], rows[2],
                              addr(c), addr(f))
    check(rc, "nufft_direct")
    return f if type == 1 else c
