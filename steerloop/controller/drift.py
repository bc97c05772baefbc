"""Per-strategy linear drift model μ(x) = A x + b learnt online (paper 1, eq. 1–2).

The objective state follows dx = μ(x) dt + σ dW; its Euler–Maruyama step is
Δx = (A x + b) Δt + σ √Δt ε with ε ~ N(0, I) (DESIGN.md, "Model" and "RLS drift"). Each
transition x_t → x_{t+1} gives the regressor φ_t = [x_t; 1] ∈ R^{d+1} and the increment target
z_t = (x_{t+1} − x_t)/Δt ∈ R^d, so z_t = Θᵀφ_t + e_t with Θ = [Aᵀ; bᵀ], learnt by
:class:`~steerloop.controller.rls.RecursiveLeastSquares` with forgetting λ.

From the a-priori residuals e_t = z_t − Θ_{t−1}ᵀφ_t (prediction before the model saw the
transition) the model keeps, with the same forgetting λ (weights w_k = λ^{n−k}, W = Σ w_k):

* the EW covariance C_e of e (:class:`~steerloop.controller.ewstats.EWMoments`); since
  Cov(e) = ΣΣᵀ/Δt, the diffusion estimate is **ΣΣᵀ ≈ C_e Δt**;
* the EW mean of e_i² per dimension, MSE_i = Σ_k w_k e_{k,i}² / W;
* the EW covariance C_z of the targets z.

The one-step predictive R² pools the dimensions: **R² = 1 − Σ_i MSE_i / Σ_i (C_z)_ii**.
Because e is a-priori, R² measures out-of-sample prediction of the increment and can be
negative; it includes the residuals of the first updates (made with the prior Θ = 0), whose
weight fades as λ^n.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.controller import _linalg
from steerloop.controller.ewstats import ew_moments, moments_from_state, packed_state
from steerloop.controller.rls import RecursiveLeastSquares
from steerloop.controller.state import DriftState, RLSState
from steerloop.errors import NotReadyError, ShapeError

__all__ = ["EQUILIBRIUM_MAX_CONDITION", "DriftModel"]

FloatArray = NDArray[np.float64]

#: The equilibrium −A⁻¹b is reported only when cond₂(A) is at most this.
EQUILIBRIUM_MAX_CONDITION = 1e8
# A closed-form upper bound on cond₂(A) below this settles the equilibrium's test without
# an SVD (see DriftModel._equilibrium_shared).
_CONDITION_BOUND_LIMIT = 1e-2 * EQUILIBRIUM_MAX_CONDITION

_IDENTITY: dict[int, FloatArray] = {}


def _identity(dim: int) -> FloatArray:
    """``np.eye(dim)``, built once per dimension (read-only)."""
    eye = _IDENTITY.get(dim)
    if eye is None:
        eye = _IDENTITY[dim] = np.eye(dim)
        eye.flags.writeable = False
    return eye


# R² is undefined when Σ Var(z_i) is at most this fraction of Σ E[z_i²] (rounding noise).
_CONSTANT_TARGET_RATIO = 1e-24


class DriftModel:
    """Online estimate of the linear drift A x + b, its diffusion and predictive R².

    Parameters
    ----------
    dim : int
        State dimension d (number of objectives).
    forgetting : float
        λ ∈ (0, 1], shared by the RLS fit and the residual statistics.
    dt : float
        Time step Δt between consecutive states (> 0).
    warmup : int
        Transitions needed before the estimates can be read (:attr:`ready`).
    initial_covariance : float
        RLS prior covariance p₀ (ridge penalty 1/p₀ on [A, b] when λ = 1).
    max_trace : float
        RLS windup guard: bound on tr P.

    Examples
    --------
    Transitions of x_{t+1} = x_t + (A x_t + b)Δt with A = −0.5 I, b = 0.25 (equilibrium 0.5):

    >>> import numpy as np
    >>> model = DriftModel(2, forgetting=1.0, warmup=3, initial_covariance=1e4)
    >>> A, b = -0.5 * np.eye(2), np.array([0.25, 0.25])
    >>> for x in ([0.0, 1.0], [1.0, 0.0], [0.2, 0.3], [0.9, 0.6]):
    ...     x = np.array(x)
    ...     model.update(x, x + A @ x + b)
    >>> model.ready
    True
    >>> np.round(model.A, 3).tolist(), np.round(model.equilibrium, 3).tolist()
    ([[-0.5, 0.0], [0.0, -0.5]], [0.5, 0.5])
    """

    __slots__ = (
        "_count",
        "_dim",
        "_dt",
        "_equilibrium_cache",
        "_forgetting",
        "_initial_covariance",
        "_max_trace",
        "_parked",
        "_phi",
        "_residuals",
        "_rls",
        "_squared_error",
        "_targets",
        "_warmup",
    )

    def __init__(
        self,
        dim: int,
        *,
        forgetting: float = 0.98,
        dt: float = 1.0,
        warmup: int = 5,
        initial_covariance: float = 100.0,
        max_trace: float = 1e6,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not 0.0 < dt < math.inf:
            raise ValueError(f"dt must be positive and finite, got {dt}")
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {warmup}")
        self._dim = dim
        self._forgetting = float(forgetting)
        self._dt = float(dt)
        self._warmup = warmup
        self._initial_covariance = initial_covariance
        self._max_trace = max_trace
        self._parked: FloatArray | None = None
        self._rls = RecursiveLeastSquares(
            dim + 1,
            dim,
            forgetting=forgetting,
            initial_covariance=initial_covariance,
            max_trace=max_trace,
        )
        self._residuals = ew_moments(dim, forgetting=forgetting)
        self._targets = ew_moments(dim, forgetting=forgetting)
        self._squared_error: FloatArray = np.zeros(dim)
        self._phi: FloatArray = np.ones(dim + 1)  # regressor buffer [x; 1]
        self._count = 0
        self._equilibrium_cache: tuple[FloatArray | None] | None = None

    # -- configuration and counters ---------------------------------------------------------

    @property
    def dim(self) -> int:
        """State dimension d."""
        return self._dim

    @property
    def forgetting(self) -> float:
        """Forgetting factor λ."""
        return self._forgetting

    @property
    def dt(self) -> float:
        """Time step Δt."""
        return self._dt

    @property
    def warmup(self) -> int:
        """Transitions needed before estimates can be read."""
        return self._warmup

    @property
    def count(self) -> int:
        """Number of transitions learnt."""
        return self._count

    @property
    def ready(self) -> bool:
        """Whether ``count >= warmup`` (estimates can be read)."""
        return self._count >= self._warmup

    def _require_ready(self, what: str) -> None:
        if self._count < self._warmup:
            raise NotReadyError(what, self._warmup, self._count)

    # -- learning -----------------------------------------------------------------------

    def update(self, previous: ArrayLike, current: ArrayLike) -> None:
        """Learn one transition x_t = ``previous`` → x_{t+1} = ``current`` (both shape (d,)).

        Fits z = (x_{t+1} − x_t)/Δt on φ = [x_t; 1] and adds the a-priori residual to the
        residual statistics.

        Raises
        ------
        ShapeError
            If either state does not have shape (d,).
        NumericalError
            If a state is not finite; the model is left unchanged.
        """
        if self._parked is not None:
            self._unpark()
        x0 = np.asarray(previous, dtype=np.float64)
        x1 = np.asarray(current, dtype=np.float64)
        d = self._dim
        if x0.shape != (d,):
            raise ShapeError("previous", (d,), x0.shape)
        if x1.shape != (d,):
            raise ShapeError("current", (d,), x1.shape)
        target: FloatArray = x1 - x0
        if self._dt != 1.0:
            target /= self._dt
        self._phi[:d] = x0
        self._rls.update(self._phi, target)  # validates finiteness before changing anything
        residual = self._rls.last_residual
        self._residuals.update(residual)
        self._targets.update(target)
        # EW mean of e², same recurrence as the EW mean: m ← m + (v − m)/W.
        self._squared_error += (residual * residual - self._squared_error) / self._residuals.weight
        self._count += 1
        self._equilibrium_cache = None

    def reset(self) -> None:
        """Forget every transition (back to the prior)."""
        if self._parked is not None:
            self._unpark()
        self._rls.reset()
        self._residuals.reset()
        self._targets.reset()
        self._squared_error = np.zeros(self._dim)
        self._count = 0
        self._equilibrium_cache = None

    # -- estimates ----------------------------------------------------------------------

    @property
    def A(self) -> FloatArray:  # noqa: N802 - the paper's name for the drift matrix
        """Drift matrix A, shape (d, d) (Θ = [Aᵀ; bᵀ]). Needs warm-up."""
        self._require_ready("drift A")
        if self._parked is not None:
            self._unpark()
        theta = self._rls.theta
        return theta[: self._dim].T.copy()

    @property
    def b(self) -> FloatArray:
        """Drift offset b, shape (d,). Needs warm-up."""
        self._require_ready("drift b")
        if self._parked is not None:
            self._unpark()
        offset: FloatArray = self._rls.theta[self._dim]
        return offset

    @property
    def diffusion(self) -> FloatArray:
        """Diffusion ΣΣᵀ ≈ C_e Δt, shape (d, d), symmetric PSD. Needs warm-up.

        C_e is the EW (population) covariance of the a-priori residuals of z = Δx/Δt; since
        Cov(e) = ΣΣᵀ/Δt under Euler–Maruyama, multiplying by Δt gives ΣΣᵀ.
        """
        self._require_ready("drift diffusion")
        if self._parked is not None:
            self._unpark()
        return self._residuals.covariance * self._dt

    @property
    def mean_squared_error(self) -> FloatArray:
        """EW mean of the squared a-priori residuals per dimension, MSE_i. Needs warm-up."""
        self._require_ready("drift mean squared error")
        if self._parked is not None:
            self._unpark()
        return self._squared_error.copy()

    @property
    def r2(self) -> float:
        """One-step predictive R² = 1 − Σ_i MSE_i / Σ_i Var_EW(z_i), pooled over dimensions.

        MSE_i is the EW mean of e_i² for the a-priori residual e = z − Θᵀφ, and Var_EW(z_i)
        the EW population variance of the increment target z_i = Δx_i/Δt, both with weights
        λ^{n−k}. At most 1, possibly negative (worse than predicting the EW mean increment).
        ``nan`` when R² is undefined: the targets are constant up to rounding, i.e.
        Σ_i Var_EW(z_i) ≤ 1e-24 · Σ_i EW-mean(z_i²) (EW standard deviation below 1e-12 of the
        targets' RMS), which includes zero variance. Needs warm-up.
        """
        self._require_ready("drift r2")
        if self._parked is not None:
            self._unpark()
        total, mean_square = self._targets.variance_total()
        if not total > _CONSTANT_TARGET_RATIO * (total + mean_square):
            return math.nan
        return 1.0 - float(self._squared_error.sum()) / total

    @property
    def equilibrium(self) -> FloatArray | None:
        """Predicted equilibrium x* = −A⁻¹b, or ``None`` when A is ill conditioned.

        ``None`` when A is singular or cond₂(A) > :data:`EQUILIBRIUM_MAX_CONDITION` (1e8).
        Needs warm-up.
        """
        self._require_ready("drift equilibrium")
        solution = self._equilibrium_shared()
        return None if solution is None else solution.copy()

    def _drift_matrix(self) -> FloatArray:
        """A (same values as :attr:`A`) as a contiguous copy; no warm-up check.

        LAPACK works on a contiguous copy anyway: pass one to :meth:`_equilibrium_shared`
        and the eigenvalue routine instead of the strided view.
        """
        if self._parked is not None:
            self._unpark()
        return self._rls._parameters_view()[:, : self._dim].copy()

    def _equilibrium_shared(self, A: FloatArray | None = None) -> FloatArray | None:
        """:attr:`equilibrium` without the warm-up check and without a copy (read-only use).

        Cached until the next update: the session reads every strategy's equilibrium each
        step, and only the running strategy's model changes. ``A``: :meth:`_drift_matrix`
        when the caller has it already.
        """
        if self._equilibrium_cache is not None:
            return self._equilibrium_cache[0]
        if self._parked is not None:
            self._unpark()
        if A is None:
            A = self._drift_matrix()
        b = self._rls._parameters_view()[:, self._dim]
        solution: FloatArray | None = None
        # cond₂(A) = σ_max / σ_min as numpy.linalg.cond computes it (σ_min = 0 gives inf, NaN
        # fails the test either way); solve as numpy.linalg.solve (see _linalg).
        # For d ≤ 3 the closed-form bound cond₂(A) ≤ ‖A‖_F^d/|det A| (_linalg.condition_bound)
        # settles the test without an SVD whenever it is far below the limit (the factor
        # 1e-2 covers the rounding of either computation); otherwise the SVD decides.
        if _linalg.condition_bound(A) <= _CONDITION_BOUND_LIMIT:
            condition = 1.0  # cond₂(A) ≤ the bound ≤ the limit: well conditioned
        else:
            singular = _linalg.singular_values(A)
            largest, smallest = float(singular[0]), float(singular[-1])
            condition = largest / smallest if smallest != 0.0 else math.inf
        if condition <= EQUILIBRIUM_MAX_CONDITION:
            try:
                solution = -_linalg.solve(A, b)
            except np.linalg.LinAlgError:
                solution = None
        # A finite sum means every entry is finite; only otherwise look entry by entry.
        if (
            solution is not None
            and not math.isfinite(float(solution.sum()))
            and not bool(np.isfinite(solution).all())
        ):
            solution = None
        if solution is not None:
            solution.flags.writeable = False
        self._equilibrium_cache = (solution,)
        return solution

    @property
    def last_residual(self) -> FloatArray:
        """A-priori residual e = z − Θᵀφ of the last transition (shape (d,)).

        Raises
        ------
        NotReadyError
            Before the first update (also right after :meth:`from_state` or :meth:`park`).
        """
        if self._parked is not None:
            self._unpark()
        return self._rls.last_residual

    def predict(self, x: ArrayLike) -> FloatArray:
        """One-step prediction x + (A x + b)Δt of the next state. Needs warm-up."""
        self._require_ready("drift prediction")
        if self._parked is not None:
            self._unpark()
        state = np.asarray(x, dtype=np.float64)
        if state.shape != (self._dim,):
            raise ShapeError("x", (self._dim,), state.shape)
        phi = np.append(state, 1.0)
        prediction: FloatArray = state + self._rls.predict(phi) * self._dt
        return prediction

    def transition(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Discrete one-step transition for the Kalman prior: ``(F, offset, Q)``.

        x_{t+1} = F x_t + offset + η with F = I + AΔt, offset = bΔt and
        Q = Cov(η) = ΣΣᵀΔt = C_e Δt² (:attr:`diffusion` × Δt: the residual e of z = Δx/Δt
        has covariance C_e, so Δx's noise has C_e Δt²). Needs warm-up.
        """
        self._require_ready("drift transition")
        if self._parked is not None:
            self._unpark()
        parameters = self._rls._parameters_view()
        dt = self._dt
        if dt == 1.0:  # x · 1.0 == x exactly: skip the products
            F: FloatArray = _identity(self._dim) + parameters[:, : self._dim]
            offset: FloatArray = parameters[:, self._dim].copy()
            Q: FloatArray = self._residuals.covariance
        else:
            F = _identity(self._dim) + parameters[:, : self._dim] * dt
            offset = parameters[:, self._dim] * dt
            Q = self._residuals.covariance * dt * dt
        return F, offset, Q

    # -- parking (memory) -----------------------------------------------------------------

    @property
    def parked(self) -> bool:
        """Whether the state is held packed (:meth:`park`)."""
        return self._parked is not None

    def park(self) -> None:
        """Hold the state in one packed vector until the model is used again.

        A session keeps one model per strategy but updates only the running strategy's;
        the others are read for their equilibrium only. Parked, a d = 3 model takes ~0.8 kB
        instead of ~2.3 kB (one array instead of eleven arrays and three objects). The
        equilibrium is computed before parking (when ready) and kept, so reading it, ``ready``
        and ``count`` and :meth:`to_state` leave the model parked; any other use unparks it
        first. Exact: every number is kept bit for bit (the last residual is dropped, as by
        :meth:`from_state`).
        """
        if self._parked is not None:
            return
        if self.ready:
            self._equilibrium_shared()
        rls = self._rls
        self._parked = np.concatenate(
            (
                rls._matrix.ravel(),
                (float(rls.count),),
                self._residuals.packed(),  # [W, n, m, S row by row]
                self._targets.packed(),
                self._squared_error,
            )
        )
        del self._rls, self._residuals, self._targets, self._squared_error, self._phi

    def _parked_parts(self) -> tuple[FloatArray, int, FloatArray, FloatArray, FloatArray]:
        """Views of the packed vector: RLS [P; Θᵀ], its count, the two streams, MSE."""
        packed = self._parked
        assert packed is not None
        d, p = self._dim, self._dim + 1
        k = (p + d) * p
        matrix = packed[:k].reshape(p + d, p)
        rls_count = int(packed[k])
        k += 1
        size = 2 + d + d * d  # one stream: [W, n, m, S row by row]
        residuals, k = packed[k : k + size], k + size
        targets, k = packed[k : k + size], k + size
        return matrix, rls_count, residuals, targets, packed[k:]

    def _unpark(self) -> None:
        """Rebuild the working objects from the packed vector (exact)."""
        matrix, rls_count, residuals, targets, mse = self._parked_parts()
        d = self._dim
        rls = RecursiveLeastSquares(
            d + 1,
            d,
            forgetting=self._forgetting,
            initial_covariance=self._initial_covariance,
            max_trace=self._max_trace,
        )
        rls._matrix[...] = matrix
        rls._count = rls_count
        self._residuals = ew_moments(d, forgetting=self._forgetting)
        self._residuals.load_packed(residuals)
        self._targets = ew_moments(d, forgetting=self._forgetting)
        self._targets.load_packed(targets)
        self._rls = rls
        self._squared_error = mse.copy()
        self._phi = np.ones(d + 1)
        self._parked = None

    # -- snapshots ------------------------------------------------------------------------

    def to_state(self) -> DriftState:
        """Serializable state (exact round trip through JSON)."""
        if self._parked is not None:  # read the packed vector, stay parked
            matrix, rls_count, residuals, targets, mse = self._parked_parts()
            p = self._dim + 1
            return DriftState(
                rls=RLSState(
                    theta=matrix[p:].T.tolist(),
                    covariance=matrix[:p].tolist(),
                    count=rls_count,
                ),
                residuals=packed_state(residuals, self._dim),
                targets=packed_state(targets, self._dim),
                squared_error=mse.tolist(),
                count=self._count,
            )
        return DriftState(
            rls=self._rls.to_state(),
            residuals=self._residuals.to_state(),
            targets=self._targets.to_state(),
            squared_error=self._squared_error.tolist(),
            count=self._count,
        )

    @classmethod
    def from_state(
        cls,
        state: DriftState,
        *,
        dim: int | None = None,
        forgetting: float = 0.98,
        dt: float = 1.0,
        warmup: int = 5,
        initial_covariance: float = 100.0,
        max_trace: float = 1e6,
    ) -> DriftModel:
        """Rebuild from :meth:`to_state` output.

        The dimension comes from the state (``dim``, when given, is checked against it); the
        other arguments are configuration and must match the saved model for the
        continuation to be bit-identical.

        Raises
        ------
        ShapeError
            If the parts of the state disagree on the dimension, or with ``dim``.
        """
        d = len(state.squared_error)
        if dim is not None and d != dim:
            raise ShapeError("squared_error", (dim,), (d,))
        model = cls(
            d,
            forgetting=forgetting,
            dt=dt,
            warmup=warmup,
            initial_covariance=initial_covariance,
            max_trace=max_trace,
        )
        rls = RecursiveLeastSquares.from_state(
            state.rls,
            forgetting=forgetting,
            initial_covariance=initial_covariance,
            max_trace=max_trace,
        )
        if (rls.n_features, rls.n_outputs) != (d + 1, d):
            raise ShapeError("rls.theta", (d + 1, d), (rls.n_features, rls.n_outputs))
        residuals = moments_from_state(state.residuals, forgetting=forgetting)
        if residuals.dim != d:
            raise ShapeError("residuals.mean", (d,), (residuals.dim,))
        targets = moments_from_state(state.targets, forgetting=forgetting)
        if targets.dim != d:
            raise ShapeError("targets.mean", (d,), (targets.dim,))
        model._rls = rls
        model._residuals = residuals
        model._targets = targets
        model._squared_error = np.asarray(state.squared_error, dtype=np.float64)
        model._count = state.count
        return model
