"""Recursive least squares with vector output, exponential forgetting and a windup guard.

The model is z = Θᵀφ + e with regressor φ ∈ R^p, target z ∈ R^m and parameters
Θ ∈ R^{p×m} (DESIGN.md, "RLS drift"). With forgetting λ ∈ (0, 1] one update is

    g = Pφ,   δ = λ + φᵀg,   k = g / δ,
    e = z − Θᵀφ                               (a-priori residual)
    Θ ← Θ + k eᵀ
    P ← (P − g gᵀ / δ) / λ                    (symmetric form of P − kφᵀP)

from the prior Θ₀ = 0, P₀ = p₀ I. After n updates Θ minimizes the exponentially weighted
ridge objective Σ_k λ^{n−k} ‖z_k − Θᵀφ_k‖² + λ^n tr(Θᵀ P₀⁻¹ Θ), i.e.

    Θ_n = (Σ_k λ^{n−k} φ_k φ_kᵀ + λ^n P₀⁻¹)⁻¹ Σ_k λ^{n−k} φ_k z_kᵀ,

which for λ = 1 is ridge regression with penalty 1/p₀. Under poor excitation (e.g. a constant
regressor) with λ < 1, P grows like λ^{−n} in the unexcited directions until it overflows
("covariance windup"); the guard rescales P so that tr P ≤ ``max_trace`` after every update.
While the guard is inactive the recursion is exact.

Implementation notes. Θ and P live in one array M = [P; Θᵀ] of shape (p + m, p), so the
products Pφ and Θᵀφ come from one matrix–vector product r = Mφ, and the two rank-one
corrections are one outer-product update M ← M − w (w[:p])ᵀ with w = [g; Θᵀφ − z] / √δ.
Because the P block is corrected by (g/√δ)(g/√δ)ᵀ, which is symmetric bit for bit, P stays
exactly symmetric and no re-symmetrization is needed.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.controller.state import RLSState
from steerloop.errors import NotReadyError, NumericalError, ShapeError

__all__ = ["RecursiveLeastSquares", "ScalarRLS"]

FloatArray = NDArray[np.float64]


_ONES: dict[int, FloatArray] = {}


def _ones(size: int) -> FloatArray:
    """Read-only ``np.ones(size)``, one per size."""
    found = _ONES.get(size)
    if found is None:
        found = _ONES[size] = np.ones(size)
        found.flags.writeable = False
    return found


def _check_config(
    n_features: int, n_outputs: int, forgetting: float, initial_covariance: float, max_trace: float
) -> None:
    if n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features}")
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
    if not 0.0 < forgetting <= 1.0:
        raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
    if not 0.0 < initial_covariance < math.inf:
        raise ValueError(
            f"initial_covariance must be positive and finite, got {initial_covariance}"
        )
    if not n_features * initial_covariance <= max_trace < math.inf:
        raise ValueError(
            f"max_trace must be finite and at least n_features * initial_covariance = "
            f"{n_features * initial_covariance}, got {max_trace}; raise max_trace or lower "
            "initial_covariance"
        )


class RecursiveLeastSquares:
    """Vector-output recursive least squares with forgetting and a covariance-trace bound.

    Parameters
    ----------
    n_features : int
        Regressor dimension p (include a constant 1 in φ for an intercept).
    n_outputs : int
        Target dimension m.
    forgetting : float
        λ ∈ (0, 1]; observation k of n carries weight λ^{n−k}. λ = 1 never forgets.
    initial_covariance : float
        p₀ > 0 of the prior P₀ = p₀ I (ridge penalty 1/p₀ when λ = 1).
    max_trace : float
        Bound on tr P applied after every update (windup guard); must be at least
        tr P₀ = p·p₀.

    Examples
    --------
    Learn z = Θᵀφ with Θ = [[2, 0], [1, -1]] from noiseless data:

    >>> import numpy as np
    >>> rls = RecursiveLeastSquares(2, 2, initial_covariance=1e5)
    >>> true_theta = np.array([[2.0, 0.0], [1.0, -1.0]])
    >>> for phi in ([1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]):
    ...     x = np.array(phi)
    ...     rls.update(x, true_theta.T @ x)
    >>> np.round(rls.theta, 4).tolist()
    [[2.0, 0.0], [1.0, -1.0]]
    >>> rls.predict(np.array([1.0, 2.0])).round(4).tolist()
    [4.0, -2.0]
    """

    __slots__ = (
        "_count",
        "_diag",
        "_forgetting",
        "_initial_covariance",
        "_inv_forgetting",
        "_last",
        "_matrix",
        "_max_trace",
        "_n_features",
        "_n_outputs",
        "_ones_features",
        "_p",
    )

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        *,
        forgetting: float = 1.0,
        initial_covariance: float = 100.0,
        max_trace: float = 1e6,
    ) -> None:
        _check_config(n_features, n_outputs, forgetting, initial_covariance, max_trace)
        self._n_features = n_features
        self._n_outputs = n_outputs
        self._forgetting = float(forgetting)
        self._inv_forgetting = 1.0 / self._forgetting
        self._initial_covariance = float(initial_covariance)
        self._max_trace = float(max_trace)
        self._ones_features: FloatArray = _ones(n_features)
        self._matrix: FloatArray = np.zeros((n_features + n_outputs, n_features))
        self._bind_views()
        self._p[...] = np.eye(n_features) * self._initial_covariance
        self._count = 0
        self._last: FloatArray | None = None

    def _bind_views(self) -> None:
        """Views into M = [P; Θᵀ]: the P block and its (writable) diagonal."""
        self._p: FloatArray = self._matrix[: self._n_features]
        self._diag: FloatArray = np.einsum("ii->i", self._p)

    # -- configuration and read-only state --------------------------------------------------

    @property
    def n_features(self) -> int:
        """Regressor dimension p."""
        return self._n_features

    @property
    def n_outputs(self) -> int:
        """Target dimension m."""
        return self._n_outputs

    @property
    def forgetting(self) -> float:
        """Forgetting factor λ."""
        return self._forgetting

    @property
    def count(self) -> int:
        """Number of updates since construction or the last :meth:`reset`."""
        return self._count

    @property
    def theta(self) -> FloatArray:
        """Parameters Θ, shape (n_features, n_outputs) (a copy)."""
        return self._matrix[self._n_features :].T.copy()

    @property
    def covariance(self) -> FloatArray:
        """Covariance P, shape (n_features, n_features) (a copy)."""
        return self._p.copy()

    def _parameters_view(self) -> FloatArray:
        """Θᵀ, shape (n_outputs, n_features), as a view: read-only use inside the package.

        It changes with the next :meth:`update`; copy it to keep it.
        """
        return self._matrix[self._n_features :]

    def _covariance_view(self) -> FloatArray:
        """P as a view (contiguous, same layout as :attr:`covariance`); read-only use."""
        return self._p

    @property
    def last_residual(self) -> FloatArray:
        """A-priori residual e = z − Θᵀφ of the last update (Θ before that update).

        Raises
        ------
        NotReadyError
            Before the first update.
        """
        if self._last is None:
            raise NotReadyError("RLS last residual", 1, 0)
        # _last holds Θᵀφ − z; IEEE subtraction is sign-symmetric, so this is z − Θᵀφ exactly.
        return -self._last[self._n_features :]

    # -- learning -----------------------------------------------------------------------

    def update(self, regressor: ArrayLike, target: ArrayLike) -> None:
        """Learn one observation (φ, z).

        Parameters
        ----------
        regressor : array of shape (n_features,)
            φ, finite.
        target : array of shape (n_outputs,)
            z, finite.

        Raises
        ------
        ShapeError
            If φ or z has the wrong shape.
        NumericalError
            If φ or z is not finite (or so large, above ~1e150, that sums of squares
            overflow). The estimator is left unchanged; callers filter missing values
            before updating.
        """
        phi = np.asarray(regressor, dtype=np.float64)
        z = np.asarray(target, dtype=np.float64)
        p = self._n_features
        if phi.shape != (p,):
            raise ShapeError("regressor", (p,), phi.shape)
        if z.shape != (self._n_outputs,):
            raise ShapeError("target", (self._n_outputs,), z.shape)
        # Sums of squares: non-finite iff an entry is (or the vector is absurdly large),
        # without the invalid-value warnings that inf · 0 would raise in the products below.
        if not math.isfinite(phi.dot(phi) + z.dot(z)):
            raise NumericalError(
                "RLS update",
                "regressor or target is not finite (or above ~1e150); drop missing or invalid "
                "values before updating",
            )
        r: FloatArray = self._matrix.dot(phi)  # [Pφ; Θᵀφ] = [g; prediction]
        g = r[:p]
        denom = self._forgetting + phi.dot(g)
        if not 0.0 < denom < math.inf:
            raise NumericalError(
                "RLS update",
                f"φᵀPφ + λ = {denom} is not positive and finite; rescale the regressors",
            )
        r[p:] -= z  # [g; Θᵀφ − z] = [g; −e]
        w = r * (1.0 / math.sqrt(denom))
        # P ← P − g gᵀ/δ and Θᵀ ← Θᵀ + e gᵀ/δ, as one rank-one update of M = [P; Θᵀ].
        self._matrix -= w[:, None] * w[:p]  # np.multiply.outer(w, w[:p])
        # Forgetting and windup guard in one scaling: P ← P · min(1/λ, max_trace / tr P).
        trace = self._diag.dot(self._ones_features)  # tr(P − g gᵀ/δ)
        if trace * self._inv_forgetting > self._max_trace:
            self._p *= self._max_trace / trace
        elif self._forgetting != 1.0:
            self._p *= self._inv_forgetting
        self._last = r
        self._count += 1

    def predict(self, regressor: ArrayLike) -> FloatArray:
        """Prediction Θᵀφ, shape (n_outputs,), for a regressor φ of shape (n_features,)."""
        phi = np.asarray(regressor, dtype=np.float64)
        if phi.shape != (self._n_features,):
            raise ShapeError("regressor", (self._n_features,), phi.shape)
        # Same product as in update, so predict(φ) is bit-identical to the a-priori prediction.
        prediction: FloatArray = self._matrix.dot(phi)[self._n_features :]
        return prediction

    def reset(self) -> None:
        """Return to the prior Θ = 0, P = p₀ I and forget the count and last residual."""
        self._matrix[...] = 0.0
        self._p[...] = np.eye(self._n_features) * self._initial_covariance
        self._count = 0
        self._last = None

    # -- snapshots ------------------------------------------------------------------------

    def to_state(self) -> RLSState:
        """Serializable state Θ, P, count (exact round trip through JSON).

        The last residual is not part of the state; after :meth:`from_state`,
        :attr:`last_residual` is available again after the next update.
        """
        return RLSState(
            theta=self.theta.tolist(),
            covariance=self._p.tolist(),
            count=self._count,
        )

    @classmethod
    def from_state(
        cls,
        state: RLSState,
        *,
        forgetting: float = 1.0,
        initial_covariance: float = 100.0,
        max_trace: float = 1e6,
    ) -> RecursiveLeastSquares:
        """Rebuild from :meth:`to_state` output.

        The dimensions come from the state; ``forgetting``, ``initial_covariance`` and
        ``max_trace`` are configuration and must match the estimator that was saved for the
        continuation to be exact.

        Raises
        ------
        ShapeError
            If Θ is not a non-empty matrix or P is not (n_features, n_features).
        """
        theta = np.asarray(state.theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] < 1:
            raise ShapeError("theta", (-1, -1), theta.shape)
        n_features, n_outputs = theta.shape
        covariance = np.asarray(state.covariance, dtype=np.float64)
        if covariance.shape != (n_features, n_features):
            raise ShapeError("covariance", (n_features, n_features), covariance.shape)
        rls = cls(
            n_features,
            n_outputs,
            forgetting=forgetting,
            initial_covariance=initial_covariance,
            max_trace=max_trace,
        )
        rls._p[...] = covariance
        rls._matrix[n_features:] = theta.T
        rls._count = state.count
        return rls


class ScalarRLS:
    """:class:`RecursiveLeastSquares` for one output and a handful of features, in floats.

    The same recursion, forgetting and windup guard (module docstring), computed with Python
    floats instead of numpy arrays: for the severity model's 3- and 2-feature fits a numpy
    call costs more than the arithmetic. Results agree with :class:`RecursiveLeastSquares`
    to rounding (sums are formed left to right; BLAS may fuse or reorder them). The state
    (:meth:`to_state`) is the same :class:`~steerloop.controller.state.RLSState`, with Θ of
    shape (n_features, 1).

    Examples
    --------
    >>> rls = ScalarRLS(2, initial_covariance=1e5)
    >>> for phi, z in (([1.0, 0.0], 2.0), ([0.0, 1.0], 1.0), ([1.0, 1.0], 3.0)):
    ...     rls.update(phi, z)
    >>> [round(t, 4) for t in rls.theta]
    [2.0, 1.0]
    """

    __slots__ = ("_count", "_cov", "_forgetting", "_inv_forgetting", "_max_trace", "_n", "_theta")

    def __init__(
        self,
        n_features: int,
        *,
        forgetting: float = 1.0,
        initial_covariance: float = 100.0,
        max_trace: float = 1e6,
    ) -> None:
        _check_config(n_features, 1, forgetting, initial_covariance, max_trace)
        self._n = n_features
        self._forgetting = float(forgetting)
        self._inv_forgetting = 1.0 / self._forgetting
        self._max_trace = float(max_trace)
        p0 = float(initial_covariance)
        self._theta = [0.0] * n_features
        self._cov = [[p0 if i == j else 0.0 for j in range(n_features)] for i in range(n_features)]
        self._count = 0

    @property
    def n_features(self) -> int:
        """Regressor dimension p."""
        return self._n

    @property
    def count(self) -> int:
        """Number of updates."""
        return self._count

    @property
    def theta(self) -> list[float]:
        """Parameters θ (a copy)."""
        return list(self._theta)

    @property
    def covariance(self) -> list[list[float]]:
        """Covariance P (a copy)."""
        return [list(row) for row in self._cov]

    def predict(self, phi: list[float]) -> float:
        """θᵀφ."""
        total = 0.0
        for t, f in zip(self._theta, phi, strict=True):
            total += t * f
        return total

    def quadratic(self, phi: list[float]) -> float:
        """φᵀPφ (the leverage of φ)."""
        cov = self._cov
        if len(phi) == 3 == self._n:  # the loops below, written out (same sums, same order)
            f0, f1, f2 = phi
            (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = cov
            total = 0.0 + (0.0 + f0 * r00 + f1 * r10 + f2 * r20) * f0
            total += (0.0 + f0 * r01 + f1 * r11 + f2 * r21) * f1
            total += (0.0 + f0 * r02 + f1 * r12 + f2 * r22) * f2
            return total
        total = 0.0
        for j, phi_j in enumerate(phi):
            column = 0.0
            for phi_i, row in zip(phi, cov, strict=False):
                column += phi_i * row[j]
            total += column * phi_j
        return total

    def update(self, phi: list[float], target: float) -> None:
        """Learn (φ, z); raises NumericalError (state unchanged) on non-finite input."""
        # Loops over zip and comprehensions instead of indices; every sum and product is the
        # same operation in the same order as the textbook index loops (same numbers).
        n = self._n
        if len(phi) != n:
            raise ShapeError("regressor", (n,), (len(phi),))
        if n == 3:
            self._update3(phi, target)
            return
        if n == 2:
            self._update2(phi, target)
            return
        squares = target * target
        for f in phi:
            squares += f * f
        if not math.isfinite(squares):
            raise NumericalError(
                "RLS update",
                "regressor or target is not finite (or above ~1e150); drop missing or invalid "
                "values before updating",
            )
        cov = self._cov
        gain = []
        for row in cov:
            total = 0.0
            for r, f in zip(row, phi, strict=False):
                total += r * f
            gain.append(total)
        denom = self._forgetting
        for f, g in zip(phi, gain, strict=True):
            denom += f * g
        if not 0.0 < denom < math.inf:
            raise NumericalError(
                "RLS update",
                f"φᵀPφ + λ = {denom} is not positive and finite; rescale the regressors",
            )
        scale = 1.0 / math.sqrt(denom)
        w = [g * scale for g in gain]
        error = (self.predict(phi) - target) * scale  # (θᵀφ − z)/√δ
        self._theta = [t - error * wi for t, wi in zip(self._theta, w, strict=False)]
        cov = self._cov = [
            [r - wi * wj for r, wj in zip(row, w, strict=False)]
            for row, wi in zip(cov, w, strict=False)
        ]
        trace = 0.0
        for i, row in enumerate(cov):
            trace += row[i]
        if trace * self._inv_forgetting > self._max_trace:
            factor = self._max_trace / trace
        elif self._forgetting != 1.0:
            factor = self._inv_forgetting
        else:
            factor = 1.0
        if factor != 1.0:
            self._cov = [[r * factor for r in row] for row in cov]
        self._count += 1

    def _update2(self, phi: list[float], target: float) -> None:
        """:meth:`update` for two features, written out as :meth:`_update3` (same floats)."""
        f0, f1 = phi
        squares = target * target
        squares += f0 * f0
        squares += f1 * f1
        if not math.isfinite(squares):
            raise NumericalError(
                "RLS update",
                "regressor or target is not finite (or above ~1e150); drop missing or invalid "
                "values before updating",
            )
        (r00, r01), (r10, r11) = self._cov
        g0 = 0.0 + r00 * f0 + r01 * f1
        g1 = 0.0 + r10 * f0 + r11 * f1
        denom = self._forgetting + f0 * g0 + f1 * g1
        if not 0.0 < denom < math.inf:
            raise NumericalError(
                "RLS update",
                f"φᵀPφ + λ = {denom} is not positive and finite; rescale the regressors",
            )
        scale = 1.0 / math.sqrt(denom)
        w0 = g0 * scale
        w1 = g1 * scale
        t0, t1 = self._theta
        error = (0.0 + t0 * f0 + t1 * f1 - target) * scale
        self._theta = [t0 - error * w0, t1 - error * w1]
        c00 = r00 - w0 * w0
        c11 = r11 - w1 * w1
        cov = [[c00, r01 - w0 * w1], [r10 - w1 * w0, c11]]
        trace = 0.0 + c00 + c11
        if trace * self._inv_forgetting > self._max_trace:
            factor = self._max_trace / trace
        elif self._forgetting != 1.0:
            factor = self._inv_forgetting
        else:
            factor = 1.0
        if factor != 1.0:
            cov = [[r * factor for r in row] for row in cov]
        self._cov = cov
        self._count += 1

    def _update3(self, phi: list[float], target: float) -> None:
        """:meth:`update` for three features, the loops written out (the severity drift fit).

        Every sum starts from 0.0 (or λ) and adds the terms left to right, exactly as the
        loops of :meth:`update` do, so the results are the same floats: g = Pφ,
        δ = λ + φᵀg, w = g/√δ, θ ← θ − w (θᵀφ − z)/√δ, P ← (P − w wᵀ)·factor (module
        docstring, the recursion and the windup guard).
        """
        f0, f1, f2 = phi
        squares = target * target
        squares += f0 * f0
        squares += f1 * f1
        squares += f2 * f2
        if not math.isfinite(squares):
            raise NumericalError(
                "RLS update",
                "regressor or target is not finite (or above ~1e150); drop missing or invalid "
                "values before updating",
            )
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = self._cov
        g0 = 0.0 + r00 * f0 + r01 * f1 + r02 * f2
        g1 = 0.0 + r10 * f0 + r11 * f1 + r12 * f2
        g2 = 0.0 + r20 * f0 + r21 * f1 + r22 * f2
        denom = self._forgetting + f0 * g0 + f1 * g1 + f2 * g2
        if not 0.0 < denom < math.inf:
            raise NumericalError(
                "RLS update",
                f"φᵀPφ + λ = {denom} is not positive and finite; rescale the regressors",
            )
        scale = 1.0 / math.sqrt(denom)
        w0 = g0 * scale
        w1 = g1 * scale
        w2 = g2 * scale
        t0, t1, t2 = self._theta
        error = (0.0 + t0 * f0 + t1 * f1 + t2 * f2 - target) * scale
        self._theta = [t0 - error * w0, t1 - error * w1, t2 - error * w2]
        c00 = r00 - w0 * w0
        c11 = r11 - w1 * w1
        c22 = r22 - w2 * w2
        cov = [
            [c00, r01 - w0 * w1, r02 - w0 * w2],
            [r10 - w1 * w0, c11, r12 - w1 * w2],
            [r20 - w2 * w0, r21 - w2 * w1, c22],
        ]
        trace = 0.0 + c00 + c11 + c22
        if trace * self._inv_forgetting > self._max_trace:
            factor = self._max_trace / trace
        elif self._forgetting != 1.0:
            factor = self._inv_forgetting
        else:
            factor = 1.0
        if factor != 1.0:
            cov = [[r * factor for r in row] for row in cov]
        self._cov = cov
        self._count += 1

    def to_state(self) -> RLSState:
        """Serializable state, as :meth:`RecursiveLeastSquares.to_state` (Θ is p × 1)."""
        return RLSState(
            theta=[[t] for t in self._theta],
            covariance=[list(row) for row in self._cov],
            count=self._count,
        )

    @classmethod
    def from_state(
        cls,
        state: RLSState,
        *,
        forgetting: float = 1.0,
        initial_covariance: float = 100.0,
        max_trace: float = 1e6,
    ) -> ScalarRLS:
        """Rebuild from :meth:`to_state` output (configuration as the saved estimator's).

        Raises
        ------
        ShapeError
            If Θ is not (p, 1) or P is not (p, p).
        """
        p = len(state.theta)
        if p < 1 or any(len(row) != 1 for row in state.theta):
            shape = (p, len(state.theta[0]) if p else 0)
            raise ShapeError("theta", (-1, 1), shape)
        if len(state.covariance) != p or any(len(row) != p for row in state.covariance):
            raise ShapeError("covariance", (p, p), (len(state.covariance), -1))
        rls = cls(
            p,
            forgetting=forgetting,
            initial_covariance=initial_covariance,
            max_trace=max_trace,
        )
        rls._theta = [float(row[0]) for row in state.theta]
        rls._cov = [[float(v) for v in row] for row in state.covariance]
        rls._count = state.count
        return rls
