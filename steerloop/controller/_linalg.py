"""numpy's LAPACK kernels for the small matrices of one controller step, without the wrapper.

For the 3 × 3 to 24 × 24 float64 matrices of a step, the Python layer of ``numpy.linalg``
(array conversion, shape and dtype dispatch, finiteness checks) costs two to four times the
LAPACK call itself. These helpers call the very same gufuncs (``numpy.linalg._umath_linalg``)
with the same signatures and the same floating-point error state, so the results are
bit-identical to ``numpy.linalg`` and failures raise the same
:class:`numpy.linalg.LinAlgError`. They skip the checks instead: arguments must already be
float64 arrays of the right shapes (square matrices; ``eigvals`` needs finite entries), which
the callers guarantee. If numpy ever drops the private module, the public functions are used.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

__all__ = ["eigvals", "eigvalsh", "inv", "singular_values", "solve"]

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


def _singular(_error: str, _flag: int) -> NoReturn:
    raise np.linalg.LinAlgError("Singular matrix")


def _no_convergence(_error: str, _flag: int) -> NoReturn:
    raise np.linalg.LinAlgError("Eigenvalues did not converge")


def _svd_no_convergence(_error: str, _flag: int) -> NoReturn:
    raise np.linalg.LinAlgError("SVD did not converge")


if FAST:

    def eigvals(a: FloatArray) -> ComplexArray:
        """Eigenvalues of a finite real square matrix, always complex (``numpy.linalg.eigvals``)."""
        with np.errstate(
            call=_no_convergence, invalid="call", over="ignore", divide="ignore", under="ignore"
        ):
            values: ComplexArray = _eigvals(a, signature="d->D")
        return values

    def eigvalsh(a: FloatArray) -> FloatArray:
        """Ascending eigenvalues of a symmetric matrix (lower triangle; ``eigvalsh``)."""
        with np.errstate(
            call=_no_convergence, invalid="call", over="ignore", divide="ignore", under="ignore"
        ):
            values: FloatArray = _eigvalsh(a, signature="d->d")
        return values

    def inv(a: FloatArray) -> FloatArray:
        """Inverse of a square matrix (``numpy.linalg.inv``); LinAlgError when singular."""
        with np.errstate(
            call=_singular, invalid="call", over="ignore", divide="ignore", under="ignore"
        ):
            result: FloatArray = _inv(a, signature="d->d")
        return result

    def solve(a: FloatArray, b: FloatArray) -> FloatArray:
        """Solution x of a x = b for a vector b (``numpy.linalg.solve``)."""
        with np.errstate(
            call=_singular, invalid="call", over="ignore", divide="ignore", under="ignore"
        ):
            result: FloatArray = _solve1(a, b, signature="dd->d")
        return result

    def singular_values(a: FloatArray) -> FloatArray:
        """Descending singular values (``numpy.linalg.svd(a, compute_uv=False)``)."""
        with np.errstate(
            call=_svd_no_convergence,
            invalid="call",
            over="ignore",
            divide="ignore",
            under="ignore",
        ):
            values: FloatArray = _svd(a, signature="d->d")
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
