"""numpy's LAPACK kernels for the small matrices of one controller step, without the wrapper.

For the 3 × 3 to 24 × 24 float64 matrices of a step, the Python layer of ``numpy.linalg``
(array conversion, shape and dtype dispatch, finiteness checks) costs two to four times the
LAPACK call itself. These helpers call the very same gufuncs (``numpy.linalg._umath_linalg``)
with the same signatures and the same floating-point error state, so the results are
bit-identical to ``numpy.linalg`` and failures raise the same
:class:`numpy.linalg.LinAlgError`. They skip the checks instead: arguments must already be
float64 arrays of the right shapes (square matrices; ``eigvals`` needs finite entries), which
the callers guarantee. If numpy ever drops the private module, the public functions are used.
The error state is set from objects built once at import (see ``_run``), not by entering a
new ``np.errstate`` per call.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

__all__ = ["condition_bound", "eigvals", "eigvalsh", "inv", "singular_values", "solve"]

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]

try:  # pragma: no branch
    from numpy.linalg import _umath_linalg as _gufuncs

    _eigvals: Any = _gufuncs.eigvals
    _eigvalsh: Any = _gufuncs.eigvalsh_lo
    _inv: Any = _gufuncs.inv
    _solve1: Any = _gufuncs.solve1
    _svd: Any = _gufuncs.svd
    FAST = True
except (ImportError, AttributeError):  # pragma: no cover - depends on the numpy build
    FAST = False


def condition_bound(a: FloatArray) -> float:
    """Upper bound ‖A‖_F^d / |det A| on cond₂(A) = σ_max/σ_min, in closed form for d ≤ 3.

    Every singular value is at most ‖A‖_F and their product is |det A|, so
    σ_min = |det A| / ∏_{i<d} σ_i ≥ |det A| / ‖A‖_F^{d−1} and σ_max ≤ ‖A‖_F, hence
    cond₂(A) ≤ ‖A‖_F^d / |det A|. Cheap for the 1 × 1 to 3 × 3 drift matrices (no SVD);
    ``inf`` when the bound is not available (d > 3, det A = 0, non-finite entries), which
    only tells the caller to compute cond₂ itself.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[-0.5, 0.1, 0.0], [0.0, -0.4, 0.0], [0.2, 0.0, -0.6]])
    >>> bool(np.linalg.cond(a) <= condition_bound(a) < 10.0)
    True
    """
    d = a.shape[0]
    if d > 3:
        return math.inf
    rows: list[list[float]] = a.tolist()
    squares = 0.0
    for row in rows:
        for value in row:
            squares += value * value
    if d == 3:
        (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = rows
        det = (
            a00 * (a11 * a22 - a12 * a21)
            - a01 * (a10 * a22 - a12 * a20)
            + a02 * (a10 * a21 - a11 * a20)
        )
        power = squares * math.sqrt(squares)
    elif d == 2:
        (a00, a01), (a10, a11) = rows
        det = a00 * a11 - a01 * a10
        power = squares
    else:
        det = rows[0][0] if d == 1 else 0.0
        power = math.sqrt(squares)
    det = abs(float(det))
    if not (det > 0.0 and math.isfinite(det) and math.isfinite(power)):
        return math.inf
    return power / det


def _singular(_error: str, _flag: int) -> NoReturn:
    raise np.linalg.LinAlgError("Singular matrix")


def _no_convergence(_error: str, _flag: int) -> NoReturn:
    raise np.linalg.LinAlgError("Eigenvalues did not converge")


def _svd_no_convergence(_error: str, _flag: int) -> NoReturn:
    raise np.linalg.LinAlgError("SVD did not converge")


if FAST:

    def _error_state(handler: Any) -> Any:
        """``np.errstate(call=handler, invalid="call", rest "ignore")`` as numpy stores it."""
        with np.errstate(
            call=handler, invalid="call", over="ignore", divide="ignore", under="ignore"
        ):
            return _state_var.get()

    try:  # pragma: no branch
        # numpy keeps the floating-point error state in a context variable; np.errstate
        # builds a new state object on every entry (~1.5 µs). The states these helpers need
        # are built once, on top of the state found at import (_BASE_STATE), and set
        # directly: np.errstate would build exactly these objects from that state. Under any
        # other state (a caller's own np.errstate, another context), np.errstate is used.
        from numpy._core import _ufunc_config

        _state_var: Any = getattr(_ufunc_config, "_extobj_contextvar")  # noqa: B009 - untyped

        _BASE_STATE: Any = _state_var.get()
        _SINGULAR_STATE: Any = _error_state(_singular)
        _EIG_STATE: Any = _error_state(_no_convergence)
        _SVD_STATE: Any = _error_state(_svd_no_convergence)
    except (ImportError, AttributeError):  # pragma: no cover - depends on the numpy version
        _state_var = None
        _BASE_STATE = _SINGULAR_STATE = _EIG_STATE = _SVD_STATE = object()

    def _run(kernel: Any, state: Any, handler: Any, signature: str, *args: FloatArray) -> Any:
        """``kernel(*args, signature=signature)`` under the error state of ``handler``."""
        if _state_var is not None and _state_var.get() is _BASE_STATE:
            token = _state_var.set(state)
            try:
                return kernel(*args, signature=signature)
            finally:
                _state_var.reset(token)
        with np.errstate(
            call=handler, invalid="call", over="ignore", divide="ignore", under="ignore"
        ):
            return kernel(*args, signature=signature)

    def eigvals(a: FloatArray) -> ComplexArray:
        """Eigenvalues of a finite real square matrix, always complex (``numpy.linalg.eigvals``)."""
        values: ComplexArray = _run(_eigvals, _EIG_STATE, _no_convergence, "d->D", a)
        return values

    def eigvalsh(a: FloatArray) -> FloatArray:
        """Ascending eigenvalues of a symmetric matrix (lower triangle; ``eigvalsh``)."""
        values: FloatArray = _run(_eigvalsh, _EIG_STATE, _no_convergence, "d->d", a)
        return values

    def inv(a: FloatArray) -> FloatArray:
        """Inverse of a square matrix (``numpy.linalg.inv``); LinAlgError when singular."""
        result: FloatArray = _run(_inv, _SINGULAR_STATE, _singular, "d->d", a)
        return result

    def solve(a: FloatArray, b: FloatArray) -> FloatArray:
        """Solution x of a x = b for a vector b (``numpy.linalg.solve``)."""
        result: FloatArray = _run(_solve1, _SINGULAR_STATE, _singular, "dd->d", a, b)
        return result

    def singular_values(a: FloatArray) -> FloatArray:
        """Descending singular values (``numpy.linalg.svd(a, compute_uv=False)``)."""
        values: FloatArray = _run(_svd, _SVD_STATE, _svd_no_convergence, "d->d", a)
        return values

else:  # pragma: no cover - public numpy.linalg, same results

    def eigvals(a: FloatArray) -> ComplexArray:
        """Eigenvalues of a finite real square matrix, always complex (``numpy.linalg.eigvals``)."""
        return np.asarray(np.linalg.eigvals(a), dtype=np.complex128)

    def eigvalsh(a: FloatArray) -> FloatArray:
        """Ascending eigenvalues of a symmetric matrix (lower triangle; ``eigvalsh``)."""
        return np.asarray(np.linalg.eigvalsh(a), dtype=np.float64)

    def inv(a: FloatArray) -> FloatArray:
        """Inverse of a square matrix (``numpy.linalg.inv``); LinAlgError when singular."""
        return np.asarray(np.linalg.inv(a), dtype=np.float64)

    def solve(a: FloatArray, b: FloatArray) -> FloatArray:
        """Solution x of a x = b for a vector b (``numpy.linalg.solve``)."""
        return np.asarray(np.linalg.solve(a, b), dtype=np.float64)

    def singular_values(a: FloatArray) -> FloatArray:
        """Descending singular values (``numpy.linalg.svd(a, compute_uv=False)``)."""
        return np.asarray(np.linalg.svd(a, compute_uv=False), dtype=np.float64)
