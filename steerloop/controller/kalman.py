"""Objective-state Kalman filter: noisy scores y_t in, filtered objectives x̂_t out.

Model (DESIGN.md, "Kalman filter"; paper 1, eq. 1–2 discretized by Euler–Maruyama)::

    x_{t+1} = F x_t + b Δt + w_t,   w_t ~ N(0, Q),   F = I + A_π Δt,   Q = Σ_π Δt
    y_t     = x_t + v_t,            v_t ~ N(0, R),   R = diag(r_1, …, r_d)

Predict (filterpy ``KalmanFilter.predict`` with control input B = I, u = b Δt)::

    x⁻ = F x + u,   P⁻ = F P Fᵀ + Q

Update on the valid components only: with V the set of valid indices, H_V the rows V of the
identity and R_V = R[V, V] (missing rows dropped from H and R)::

    e = y_V − H_V x⁻,   S = H_V P⁻ H_Vᵀ + R_V,   K = P⁻ H_Vᵀ S⁻¹
    x = x⁻ + K e,       P = (I − K H_V) P⁻ (I − K H_V)ᵀ + K R_V Kᵀ   (Joseph form)

An all-missing measurement performs no update (posterior = prior). filterpy treats a NaN in
``z`` as a number and would poison the state for good, so every measurement goes through
:func:`clean_measurement` first and only finite, in-range components ever reach filterpy.

After each predict and update, P is replaced by (P + Pᵀ)/2 (exactly symmetric) and, if its
smallest eigenvalue λ_min is ≤ ε = 1e-12 · max(1, λ_max), by P + (ε − λ_min) I so that it stays
positive definite with a condition number ≤ ~1e12 ("jitter"). The mean is never clipped: the
filtered state may leave [0, 1] slightly.

Hot path. With every magnitude in the safe range (see ``_SAFE``), the predict and the full
update (every component valid) run filterpy's ``KalmanFilter.predict``/``update`` arithmetic
written out, without the products by B = I and H = I (exact) and without filterpy's
bookkeeping copies (``x_prior``, ``P_post``, ``z`` …, which nothing here reads): the same
operations in the same order, so the same numbers (tests/controller/test_hot_path.py checks
them against filterpy bit for bit). Partial updates and the unsafe range call filterpy.

Non-finite transition inputs, or a predict that overflows, raise
:class:`~steerloop.errors.NumericalError` and leave the filter unchanged (the caller falls back
to a random-walk predict); an update that would overflow (only possible with magnitudes near
1e308) is dropped like an all-missing one. No floating-point warning escapes either way.
"""

from __future__ import annotations

import functools
import math
import numbers
from decimal import Decimal
from typing import Any

import numpy as np
from numpy import dot
from numpy.typing import ArrayLike, NDArray

from steerloop.controller import _linalg
from steerloop.controller.state import KalmanState
from steerloop.errors import NumericalError, ShapeError

__all__ = ["ObjectiveFilter", "clean_measurement"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Relative eigenvalue floor of the covariance (see the module docstring).
EIGENVALUE_FLOOR = 1e-12

# While |x|, λ_max(P), |F|, |offset|, |Q| and the noise variances (and their inverses) stay
# below this, one predict or update cannot overflow (d ≪ 1e8), so filterpy runs without an
# np.errstate context (≈2 µs); beyond it, it runs with floating-point warnings silenced and the
# result is checked for finiteness.
_SAFE = 1e50

_NAN = math.nan

# The covariance guard bounds the eigenvalues by Gershgorin discs for d up to this size
# (a Python loop over d² entries is cheaper than eigvalsh there) ...
_GERSHGORIN_MAX_DIM = 4
# ... and trusts those bounds only with this relative slack (computed eigenvalues are within
# ~d·ε·‖P‖ of the exact ones, the computed disc bounds within ~d·ε·‖P‖ too).
_GERSHGORIN_SLACK = 1e-9


def _gershgorin(rows: list[list[float]]) -> tuple[float, float]:
    """Lower and upper Gershgorin bounds min_i (P_ii − r_i), max_i (P_ii + r_i).

    r_i = Σ_{j≠i} |P_ij|. Every eigenvalue of the (finite) matrix lies in between.
    """
    lower = math.inf
    upper = -math.inf
    for i, row in enumerate(rows):
        radius = 0.0
        for value in row:
            radius += abs(value)
        centre = row[i]
        radius -= abs(centre)
        if centre - radius < lower:
            lower = centre - radius
        if centre + radius > upper:
            upper = centre + radius
    return lower, upper


def _score(item: object) -> float:
    """One entry of a measurement as a float in [0, 1], or NaN if it is not a valid score."""
    if type(item) is float:  # the common case, decided without the checks below
        return item if 0.0 <= item <= 1.0 else _NAN
    if isinstance(item, bool | np.bool_) or not isinstance(item, float | numbers.Real | Decimal):
        return _NAN  # a bool is not a score; neither is a string, None, a list, an object …
    try:
        value = float(item)
    except Exception:  # e.g. an int too large for a float, Decimal("sNaN"), a broken __float__
        return _NAN
    return value if 0.0 <= value <= 1.0 else _NAN


def clean_measurement(measurement: object, dim: int) -> tuple[FloatArray, BoolArray]:
    """Turn any measurement into a float vector of length ``dim`` and a mask of valid entries.

    Never raises. A measurement is a list, a tuple or a 1-D numpy array (masked arrays
    included) of length ``dim``; anything else (``None``, a scalar, a string, a dict, an array
    of another shape, a sequence of another length, a generator …) is entirely missing.
    An entry is valid when it is a real number (``int``, ``float``, numpy integer or floating
    scalar, ``fractions.Fraction``, ``decimal.Decimal``) that is finite and lies in [0, 1].
    Invalid entries: NaN, ±inf, ``None``, strings, bools (``True`` is not a score), nested
    sequences, arbitrary objects, masked entries, and numbers outside [0, 1] — scores are in
    [0, 1] by contract, so an out-of-range number signals a broken scorer and is treated as
    missing rather than clipped. Boolean, string or complex numpy arrays are entirely missing.

    Parameters
    ----------
    measurement : object
        Raw scores y_t, in objective order.
    dim : int
        Number of objectives d.

    Returns
    -------
    values : ndarray of float64, shape (d,)
        The scores, NaN where invalid.
    mask : ndarray of bool, shape (d,)
        ``True`` where the entry is valid (and ``values`` is finite).

    Examples
    --------
    >>> values, mask = clean_measurement([0.5, None, True, 1.5, "0.3", 1], 6)
    >>> values.tolist()[0], mask.tolist()
    (0.5, [True, False, False, False, False, True])
    """
    hidden: BoolArray | None = None
    if isinstance(measurement, np.ndarray):
        if measurement.shape != (dim,):
            return np.full(dim, _NAN), np.zeros(dim, dtype=np.bool_)
        if type(measurement) is not np.ndarray and isinstance(measurement, np.ma.MaskedArray):
            hidden = np.ma.getmaskarray(measurement)
            measurement = np.ma.getdata(measurement)
        kind = measurement.dtype.kind
        if kind in "fiu":
            if measurement.dtype.itemsize > 8:  # long double: may overflow float64 (-> inf)
                with np.errstate(over="ignore"):
                    values = np.array(measurement, dtype=np.float64)
            else:
                values = np.array(measurement, dtype=np.float64)
            mask = (values >= 0.0) & (values <= 1.0)
        elif kind == "O":
            values = np.array([_score(item) for item in measurement], dtype=np.float64)
            mask = ~np.isnan(values)
        else:  # bool, complex, strings, bytes, datetimes, structured: not scores
            return np.full(dim, _NAN), np.zeros(dim, dtype=np.bool_)
        if hidden is not None:
            mask &= ~hidden
        if not mask.all():
            values[~mask] = _NAN
        return values, mask
    if isinstance(measurement, list | tuple) and len(measurement) == dim:
        values = np.array([_score(item) for item in measurement], dtype=np.float64)
        return values, ~np.isnan(values)
    return np.full(dim, _NAN), np.zeros(dim, dtype=np.bool_)


_CONSTANTS: dict[int, tuple[FloatArray, FloatArray]] = {}

#: Copies filterpy keeps of the last predict and update (x⁻, P⁻, z, K, S, S⁻¹, x⁺, P⁺) that
#: nothing here reads: ~1.5 kB a filter at d = 3, dropped after every step (a service holds
#: thousands of filters). ``y`` stays: :attr:`ObjectiveFilter.innovation` reads it.
_SCRATCH = dict.fromkeys(("x_prior", "P_prior", "z", "K", "S", "SI", "x_post", "P_post"))


def _constants(dim: int) -> tuple[FloatArray, FloatArray]:
    """Read-only ``(np.eye(dim), np.zeros((dim, dim)))``, one pair per dimension."""
    found = _CONSTANTS.get(dim)
    if found is None:
        eye, zeros = np.eye(dim), np.zeros((dim, dim))
        eye.flags.writeable = False
        zeros.flags.writeable = False
        found = _CONSTANTS[dim] = (eye, zeros)
    return found


@functools.lru_cache(maxsize=64)
def _noise_constants(noise: bytes) -> tuple[FloatArray, FloatArray]:
    """Read-only ``(r, np.diag(r))`` for the float64 bytes of measurement variances r."""
    vector = np.frombuffer(noise, dtype=np.float64).copy()
    matrix = np.diag(vector)
    vector.flags.writeable = False
    matrix.flags.writeable = False
    return vector, matrix


def _as_vector(name: str, value: float | ArrayLike, dim: int) -> FloatArray:
    """A scalar broadcast to (d,), or an array that must already have shape (d,)."""
    array = np.array(value, dtype=np.float64)
    if array.ndim == 0:
        return np.full(dim, float(array))
    if array.shape != (dim,):
        raise ShapeError(name, (dim,), array.shape)
    return array


class ObjectiveFilter:
    """Kalman filter of the d-dimensional objective state (filterpy ``KalmanFilter``).

    The measurement of every objective is the objective itself plus independent Gaussian
    noise: y_t = x_t + v_t, v_t ~ N(0, R), R = diag(measurement_noise). See the module
    docstring for the predict/update equations, the missing-value rule and the
    positive-definiteness guard.

    Parameters
    ----------
    dim : int
        Number of objectives d ≥ 1.
    measurement_noise : float or array of shape (d,)
        Measurement variances r_i > 0 (one for all objectives, or one per objective).
    initial_mean : float or array of shape (d,)
        Initial state estimate x̂_0 (finite).
    initial_covariance : float
        Initial covariance P_0 = p_0 I, p_0 > 0.

    Examples
    --------
    >>> kf = ObjectiveFilter(2, measurement_noise=0.01)
    >>> kf.predict_random_walk(0.001)
    >>> kf.update([0.8, float("nan")]).tolist()
    [True, False]
    >>> [round(v, 4) for v in kf.mean.tolist()], kf.count
    ([0.797, 0.5], 1)
    >>> round(float(kf.innovation[0]), 4), bool(np.isnan(kf.innovation[1]))
    (0.3, True)
    """

    def __init__(
        self,
        dim: int,
        *,
        measurement_noise: float | ArrayLike = 0.01,
        initial_mean: float | ArrayLike = 0.5,
        initial_covariance: float = 1.0,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        noise = _as_vector("measurement_noise", measurement_noise, dim)
        if not (np.isfinite(noise).all() and (noise > 0.0).all()):
            raise ValueError(
                f"measurement_noise must be finite and > 0 (a variance), got {noise.tolist()}"
            )
        mean = _as_vector("initial_mean", initial_mean, dim)
        if not np.isfinite(mean).all():
            raise ValueError(f"initial_mean must be finite, got {mean.tolist()}")
        if not (math.isfinite(initial_covariance) and initial_covariance > 0.0):
            raise ValueError(f"initial_covariance must be finite and > 0, got {initial_covariance}")
        self._dim = dim
        eye, zeros = _constants(dim)
        self._eye: FloatArray = eye
        # diag(R) and R, read-only and shared by every filter with the same noise.
        self._noise, self._R = _noise_constants(noise.tobytes())
        # filterpy pulls in scipy.stats (~0.8 s); import it on first use to keep
        # `import steerloop` light.
        from filterpy.kalman import KalmanFilter

        self._kf: Any = KalmanFilter(dim_x=dim, dim_z=dim, dim_u=dim)
        self._kf.x = mean.reshape(dim, 1)
        self._kf.P = initial_covariance * self._eye
        # Matrices filterpy only reads (H = B = I, R) or never uses here (F and Q come with
        # every predict, M is unused): one read-only copy per dimension instead of one per
        # filter, since a service holds thousands of sessions.
        self._kf.R = self._R
        self._kf.H = self._kf.B = self._kf.F = self._kf.Q = self._kf._I = eye
        self._kf.M = zeros
        self._kf.__dict__.update(_SCRATCH)
        # filterpy's documented hook for the inverse of S: the same LAPACK call as
        # numpy.linalg.inv (bit-identical, same LinAlgError) without its Python layer.
        self._kf.inv = _linalg.inv
        self._count = 0
        self._noise_safe = bool(noise.min() >= 1.0 / _SAFE and noise.max() <= _SAFE)
        self._safe = bool(np.abs(mean).max() <= _SAFE and initial_covariance <= _SAFE)
        # Last update, for `innovation`: residual of the used components and their indices
        # (None = all d components); `_updated` is False before the first update.
        self._updated = False
        self._last_residual: FloatArray = np.empty(0)
        self._last_index: NDArray[np.intp] | None = np.empty(0, dtype=np.intp)
        # The last measurement as cleaned by update() (NaN where invalid), for the session.
        self._measurement: FloatArray = np.full(dim, _NAN)

    # ------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        """Number of objectives d."""
        return self._dim

    @property
    def count(self) -> int:
        """Number of updates that used at least one valid component."""
        return self._count

    @property
    def mean(self) -> FloatArray:
        """Filtered state x̂, shape (d,) (a copy)."""
        return np.array(self._kf.x[:, 0], dtype=np.float64)

    @property
    def covariance(self) -> FloatArray:
        """State covariance P, shape (d, d) (a copy; symmetric positive definite)."""
        return np.array(self._kf.P, dtype=np.float64)

    @property
    def measurement_noise(self) -> FloatArray:
        """Measurement variances diag(R), shape (d,) (a copy)."""
        return self._noise.copy()

    @property
    def innovation(self) -> FloatArray | None:
        """Residual e = y − x⁻ of the last update, shape (d,); NaN for components not used.

        All NaN after an all-missing update; ``None`` before the first update (and after
        :meth:`from_state`, which does not store it).
        """
        if not self._updated:
            return None
        out = np.full(self._dim, _NAN)
        if self._last_index is None:
            out[:] = self._last_residual
        else:
            out[self._last_index] = self._last_residual
        return out

    # ------------------------------------------------------------------ cleaning

    def clean(self, measurement: object) -> tuple[FloatArray, BoolArray]:
        """:func:`clean_measurement` with this filter's dimension (never raises)."""
        return clean_measurement(measurement, self._dim)

    # ------------------------------------------------------------------ predict

    def predict(self, F: ArrayLike, offset: ArrayLike, Q: ArrayLike) -> None:
        """Propagate the state one step: x⁻ = F x + offset, P⁻ = F P Fᵀ + Q.

        With the drift model of strategy π, F = I + A_π Δt, offset = b_π Δt, Q = Σ_π Δt.

        Parameters
        ----------
        F : array of shape (d, d)
            Transition matrix.
        offset : array of shape (d,)
            Additive offset (filterpy control input u with B = I).
        Q : array of shape (d, d)
            Process noise covariance (symmetric positive semi-definite; asymmetry and
            indefiniteness are repaired by the symmetrization and the eigenvalue floor).

        Raises
        ------
        ShapeError
            If an argument does not have the shape above.
        NumericalError
            If an argument has a non-finite entry, or the predicted state is not finite
            (overflow). The filter is left unchanged, so the caller can fall back, e.g. to
            :meth:`predict_random_walk`.
        """
        d = self._dim
        F_ = np.asarray(F, dtype=np.float64)
        u = np.asarray(offset, dtype=np.float64)
        Q_ = np.asarray(Q, dtype=np.float64)
        if F_.shape != (d, d):
            raise ShapeError("F", (d, d), F_.shape)
        if u.shape != (d,):
            raise ShapeError("offset", (d,), u.shape)
        if Q_.shape != (d, d):
            raise ShapeError("Q", (d, d), Q_.shape)
        kf = self._kf
        x_prior, P_prior, safe_prior = kf.x, kf.P, self._safe
        # Fast check first: a sum of squares ≤ _SAFE² means every entry is finite and at most
        # _SAFE in magnitude (NaN fails the comparison), so nothing below can raise.
        squares = float(np.vdot(F_, F_)) + float(u.dot(u)) + float(np.vdot(Q_, Q_))
        if self._safe and squares <= _SAFE * _SAFE:
            # filterpy's predict with B = I and alpha = 1, written out (module docstring,
            # "Hot path"): x = F x + u, P = F P Fᵀ + Q.
            kf.x = dot(F_, x_prior) + u.reshape(d, 1)
            kf.P = dot(dot(F_, P_prior), F_.T) + Q_
            if not self._stabilize():
                kf.x, kf.P, self._safe = x_prior, P_prior, safe_prior
                raise NumericalError(
                    "Kalman predict",
                    "the predicted state or covariance overflowed; F, offset or Q is far too large",
                )
            return
        F_max = float(np.abs(F_).max())  # NaN and inf propagate through abs/max
        u_max = float(np.abs(u).max())
        Q_max = float(np.abs(Q_).max())
        if not math.isfinite(F_max + u_max + Q_max):
            names = [
                n for n, a in (("F", F_), ("offset", u), ("Q", Q_)) if not np.isfinite(a).all()
            ]
            raise NumericalError(
                "Kalman predict",
                f"{', '.join(names) or 'F, offset, Q'} has non-finite entries; fit the drift "
                "model again or fall back to predict_random_walk()",
            )
        if self._safe and max(F_max, u_max, Q_max) <= _SAFE:
            kf.predict(u=u.reshape(d, 1), B=self._eye, F=F_, Q=Q_)
        else:
            with np.errstate(all="ignore"):
                kf.predict(u=u.reshape(d, 1), B=self._eye, F=F_, Q=Q_)
        if not self._stabilize():
            kf.x, kf.P, self._safe = x_prior, P_prior, safe_prior
            raise NumericalError(
                "Kalman predict",
                "the predicted state or covariance overflowed; F, offset or Q is far too large",
            )

    def predict_random_walk(self, q: float) -> None:
        """Random-walk predict (F = I, offset 0, Q = q I): x⁻ = x, P⁻ = P + q I.

        Used before a drift model is ready. Computed directly; the result is bit-identical to
        filterpy's ``predict`` with these arguments (multiplying by I is exact).

        Raises
        ------
        NumericalError
            If ``q`` is not finite.
        ValueError
            If ``q`` < 0.
        """
        if not math.isfinite(q):
            raise NumericalError("Kalman predict", f"process noise q must be finite, got {q}")
        if q < 0.0:
            raise ValueError(f"process noise q must be >= 0 (a variance), got {q}")
        kf = self._kf
        P_prior, safe_prior = kf.P, self._safe
        if self._safe and q <= _SAFE:
            kf.P = P_prior + q * self._eye
        else:
            with np.errstate(all="ignore"):
                kf.P = P_prior + q * self._eye
        if not self._stabilize():
            kf.P, self._safe = P_prior, safe_prior
            raise NumericalError("Kalman predict", "the covariance overflowed; q is far too large")

    # ------------------------------------------------------------------ update

    def update(self, measurement: object) -> BoolArray:
        """Update with one measurement y_t; return the mask of the components used.

        The measurement is cleaned by :func:`clean_measurement` (never raises). If every
        component is valid, the filterpy update runs with H = I, R; if some are, with H and R
        restricted to the valid rows (and columns of R); if none is, nothing changes.

        Parameters
        ----------
        measurement : object
            Raw scores, ideally a sequence or array of d floats in [0, 1].

        Returns
        -------
        ndarray of bool, shape (d,)
            ``True`` for the components that entered the update; ``~mask`` counts the
            missing values.
        """
        d = self._dim
        values, mask = clean_measurement(measurement, d)
        self._measurement = values
        n_valid = int(np.count_nonzero(mask))
        self._updated = True
        if n_valid == 0:
            self._last_residual = values
            self._last_index = None
            return mask
        kf = self._kf
        x_prior, P_prior, safe_prior = kf.x, kf.P, self._safe
        if n_valid == d:
            index: NDArray[np.intp] | None = None
            z, R, H = values.reshape(d, 1), self._R, self._eye
        else:
            index = np.flatnonzero(mask)
            z, R, H = (
                values[index].reshape(n_valid, 1),
                np.diag(self._noise[index]),
                self._eye[index],
            )
        try:
            if self._safe and self._noise_safe:
                if index is None:
                    self._update_all(z)
                else:
                    kf.update(z, R=R, H=H)
            else:
                with np.errstate(all="ignore"):
                    kf.update(z, R=R, H=H)
            stable = self._stabilize()
        except np.linalg.LinAlgError:  # singular S: only possible with extreme magnitudes
            stable = False
        if not stable:  # restore the prior: a failed update is an all-missing one
            kf.x, kf.P, self._safe = x_prior, P_prior, safe_prior
            self._last_residual = np.full(d, _NAN)
            self._last_index = None
            mask[:] = False
            return mask
        self._last_residual = np.asarray(kf.y, dtype=np.float64)[:, 0]
        self._last_index = index
        self._count += 1
        return mask

    def _update_all(self, z: FloatArray) -> None:
        """filterpy's ``update(z, R, H=I)`` with the products by H = I left out.

        Multiplying by the identity is exact, so this is filterpy's Joseph-form update
        operation for operation (module docstring, "Hot path"): y = z − x, S = P + R,
        K = P S⁻¹, x = x + K y, P = (I − K) P (I − K)ᵀ + K R Kᵀ. Sets ``x``, ``P`` and ``y``
        of the filterpy object; raises ``LinAlgError`` when S is singular, as filterpy does.
        """
        kf = self._kf
        x, P, R = kf.x, kf.P, self._R
        y = z - x
        K = dot(P, _linalg.inv(P + R))
        I_KH = self._eye - K
        kf.x = x + dot(K, y)
        kf.P = dot(dot(I_KH, P), I_KH.T) + dot(dot(K, R), K.T)
        kf.y = y

    # ------------------------------------------------------------------ guard

    def _stabilize(self) -> bool:
        """Symmetrize P and floor its eigenvalues; return False if x or P is not finite.

        Also refreshes ``_safe`` (magnitudes small enough that the next step cannot overflow).
        """
        kf = self._kf
        kf.__dict__.update(_SCRATCH)
        x = kf.x
        P = np.asarray(kf.P, dtype=np.float64)
        # A finite sum means every entry is finite (inf and NaN propagate through a sum);
        # eigvalsh must not see a NaN (it returns garbage rather than NaN).
        if float(np.vdot(x, x)) <= _SAFE * _SAFE:
            # Every |x_i| ≤ _SAFE (NaN fails the test): x_max + ΣP is finite iff ΣP is; a
            # finite Σ P_ij² (cheaper) means every entry is finite, hence ΣP too.
            x_small = True
            finite = math.isfinite(float(np.vdot(P, P))) or math.isfinite(float(P.sum()))
        else:
            x_max = float(np.abs(x).max())  # NaN and inf propagate
            x_small = x_max <= _SAFE
            finite = math.isfinite(x_max + float(P.sum()))
        if not finite:
            self._safe = False
            return False
        P = P + P.T
        P *= 0.5  # (P + Pᵀ)/2, the product in place
        if self._dim <= _GERSHGORIN_MAX_DIM:
            # Gershgorin: every eigenvalue lies in [P_ii − r_i, P_ii + r_i], r_i = Σ_{j≠i}|P_ij|.
            # When those bounds already show that no floor applies and λ_max ≤ _SAFE (with a
            # margin far above LAPACK's rounding), the eigenvalues are not needed: P is kept
            # as is, exactly what the test on eigvalsh's extremes below would decide.
            lower, upper = _gershgorin(P.tolist())
            margin = lower - _GERSHGORIN_SLACK * upper
            if upper <= 0.5 * _SAFE and margin > EIGENVALUE_FLOOR * max(1.0, upper):
                kf.P = P
                self._safe = x_small
                return True
        try:
            eigenvalues = _linalg.eigvalsh(P)
        except np.linalg.LinAlgError:
            self._safe = False
            return False
        lowest = float(eigenvalues[0])
        highest = float(eigenvalues[-1])
        floor = EIGENVALUE_FLOOR * max(1.0, highest)
        if lowest <= floor:
            P = P + (floor - lowest) * self._eye
        kf.P = P
        self._safe = x_small and highest <= _SAFE
        return True

    # ------------------------------------------------------------------ snapshots

    def to_state(self) -> KalmanState:
        """Serializable state (mean, covariance, count); an exact round trip."""
        return KalmanState(
            mean=self._kf.x[:, 0].tolist(),
            covariance=self._kf.P.tolist(),
            count=self._count,
        )

    @classmethod
    def from_state(
        cls, state: KalmanState, *, measurement_noise: float | ArrayLike
    ) -> ObjectiveFilter:
        """Rebuild from :meth:`to_state` output; ``measurement_noise`` comes from configuration.

        Continuing a restored filter gives bit-identical results. The last innovation is not
        part of the state (``innovation`` is ``None`` until the next update).

        Raises
        ------
        ShapeError
            If the covariance is not (d, d) for a mean of length d.
        NumericalError
            If the mean or covariance has non-finite entries.
        """
        mean = np.array(state.mean, dtype=np.float64)
        d = mean.shape[0]
        covariance = np.array(state.covariance, dtype=np.float64)
        if covariance.shape != (d, d):
            raise ShapeError("covariance", (d, d), covariance.shape)
        if not (np.isfinite(mean).all() and np.isfinite(covariance).all()):
            raise NumericalError(
                "Kalman state", "the snapshot has non-finite entries; reset the session"
            )
        restored = cls(d, measurement_noise=measurement_noise)
        restored._kf.x = mean.reshape(d, 1)
        restored._kf.P = covariance
        restored._count = state.count
        restored._safe = bool(np.abs(mean).max() <= _SAFE and np.abs(covariance).max() <= _SAFE)
        return restored
