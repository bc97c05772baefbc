"""Simulated objective dynamics: a linear SDE per strategy on the box [0, 1]^d.

The hidden objective state x ∈ [0, 1]^d of a loop follows the model of the
multi-objective SDE paper (eq. 1–2)

    dx = (A_π x + b_π) dt + σ_π dW,        σ_π σ_πᵀ = D_π,                         (1)

with one drift (A_π, b_π) and one diffusion covariance D_π (per unit time) per strategy π.
:meth:`Environment.step` advances many sessions at once by one Euler–Maruyama step followed
by the boundary rule:

    x_{t+1} = Π( x_t + (A_π x_t + b_π) Δt + L_π √Δt ε_t ),   ε_t ~ N(0, I_d),     (2)

where L_π is a square root of D_π (the Cholesky factor when D_π is positive definite, the
symmetric eigen-square-root otherwise) and Π is the **boundary rule: componentwise clipping
to [0, 1]** (the Euclidean projection onto the box, i.e. the projected Euler scheme for the
SDE with normal reflection at the faces). Clipping is chosen over mirror reflection because a
strategy whose equilibrium lies outside the box (feature-focused drives security below 0)
must *stay* at the face, as the paper observed security pinned at 0.0; mirror reflection of
an Euler step against a drift into the wall bounces the state back into the interior.

Scores are the state seen through the scorers' noise (measurement model of docs/architecture.md,
"Kalman filter"), clipped to the score range:

    y_t = clip(x_t + v_t, 0, 1),   v_t ~ N(0, diag(r²)),                           (3)

with r the per-objective measurement standard deviation. Initial states are
x_0 = clip(m₀ + s₀ ⊙ η, 0, 1), η ~ N(0, I).

Every method that draws takes a :class:`numpy.random.Generator` and draws exactly one
standard normal array of shape (sessions, d) per call, so a seed fixes a run.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739, eq. 1–2.

Examples
--------
>>> import numpy as np
>>> env = Environment(
...     objectives=("quality", "speed"),
...     strategies={"steady": StrategyDynamics.from_equilibrium(
...         -0.5 * np.eye(2), [0.8, 0.6], 0.0001 * np.eye(2))},
...     noise_sd=0.01, initial_mean=(0.3, 0.3), initial_std=0.05)
>>> rng = np.random.default_rng(0)
>>> x = env.reset(500, rng)
>>> for _ in range(30):
...     x = env.step(x, "steady", rng)
>>> np.round(x.mean(axis=0), 2).tolist()
[0.8, 0.6]
>>> env.observe(x, rng).shape
(500, 2)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from steerloop.errors import ShapeError

__all__ = ["Environment", "Rollout", "StrategyArg", "StrategyDynamics"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: What :meth:`Environment.step` accepts as "the strategy of each session": one name or index
#: for every session, or a sequence/array of names or indices of length ``sessions``.
StrategyArg = str | int | Sequence[str] | Sequence[int] | NDArray[np.integer[Any]]

_PSD_TOLERANCE = 1e-10


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _matrix_sqrt(covariance: FloatArray) -> FloatArray:
    """A square root L with L Lᵀ = D: Cholesky if D is positive definite, else eigen-based."""
    try:
        return np.asarray(np.linalg.cholesky(covariance), dtype=np.float64)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(covariance)
        return np.asarray(vectors * np.sqrt(np.clip(values, 0.0, None)), dtype=np.float64)


class StrategyDynamics(_Frozen):
    """Drift μ(x) = A x + b and diffusion covariance D = σσᵀ of one strategy, eq. (1).

    Parameters
    ----------
    A : list of lists, shape (d, d)
        Drift matrix (per unit time).
    b : list, shape (d,)
        Drift offset (per unit time); the equilibrium is x* = −A⁻¹ b.
    diffusion : list of lists, shape (d, d)
        Diffusion **covariance** D = σσᵀ per unit time (symmetric positive semi-definite):
        one step adds noise of covariance D Δt before the boundary rule.
    description : str
        Free text (what the strategy stands for).
    """

    A: list[list[float]]
    b: list[float]
    diffusion: list[list[float]]
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> StrategyDynamics:
        a = np.asarray(self.A, dtype=np.float64)
        dim = len(self.b)
        if a.shape != (dim, dim):
            raise ValueError(f"A must be a ({dim}, {dim}) matrix to match b, got shape {a.shape}")
        d = np.asarray(self.diffusion, dtype=np.float64)
        if d.shape != (dim, dim):
            raise ValueError(f"diffusion must be a ({dim}, {dim}) covariance, got shape {d.shape}")
        if not (np.isfinite(a).all() and np.isfinite(d).all() and np.isfinite(self.b).all()):
            raise ValueError("A, b and diffusion must be finite")
        if not np.allclose(d, d.T, atol=1e-12, rtol=0.0):
            raise ValueError("diffusion must be a symmetric covariance matrix (D = σσᵀ)")
        scale = max(1.0, float(np.abs(d).max()))
        if float(np.linalg.eigvalsh(d).min()) < -_PSD_TOLERANCE * scale:
            raise ValueError("diffusion must be positive semi-definite (a covariance D = σσᵀ)")
        return self

    @property
    def dim(self) -> int:
        """Dimension d."""
        return len(self.b)

    @property
    def equilibrium(self) -> FloatArray | None:
        """x* = −A⁻¹ b, or None when A is singular."""
        a = np.asarray(self.A, dtype=np.float64)
        try:
            return np.asarray(-np.linalg.solve(a, np.asarray(self.b)), dtype=np.float64)
        except np.linalg.LinAlgError:
            return None

    @classmethod
    def from_equilibrium(
        cls,
        A: ArrayLike,
        equilibrium: ArrayLike,
        diffusion: ArrayLike,
        *,
        description: str = "",
    ) -> StrategyDynamics:
        """Build from A, the equilibrium x* and D, with b = −A x* (so μ(x) = A(x − x*)).

        Examples
        --------
        >>> s = StrategyDynamics.from_equilibrium([[-0.5, 0.0], [0.0, -1.0]], [0.4, 0.8],
        ...                                       [[0.01, 0.0], [0.0, 0.01]])
        >>> s.b, s.equilibrium.round(12).tolist()
        ([0.2, 0.8], [0.4, 0.8])
        """
        a = np.asarray(A, dtype=np.float64)
        x_star = np.asarray(equilibrium, dtype=np.float64)
        b = -a @ x_star
        return cls(
            A=a.tolist(),
            b=b.tolist(),
            diffusion=np.asarray(diffusion, dtype=np.float64).tolist(),
            description=description,
        )


@dataclass(frozen=True)
class Rollout:
    """Result of :meth:`Environment.rollout`.

    Attributes
    ----------
    states : array, shape (steps, sessions, d)
        Hidden states x_0 … x_{T−1}.
    scores : array, shape (steps, sessions, d)
        Observed scores y_t of eq. (3).
    strategies : array of int, shape (steps, sessions)
        Index (into :attr:`Environment.strategy_names`) of the strategy that produced step t
        (for t = 0: the strategy in force from the start).
    """

    states: FloatArray
    scores: FloatArray
    strategies: IntArray


class Environment(_Frozen):
    """Per-strategy linear SDE on [0, 1]^d with noisy scores, vectorised over sessions.

    Parameters
    ----------
    objectives : tuple of str
        Objective names; their order is the vector order.
    strategies : dict of str to StrategyDynamics
        Dynamics of each strategy (same dimension as ``objectives``).
    noise_sd : float or tuple of float
        Standard deviation r of the score noise, eq. (3); one value for all objectives or
        one per objective.
    dt : float
        Time step Δt of one iteration.
    initial_mean, initial_std : float or tuple of float
        m₀ and s₀ of the initial state distribution x_0 = clip(m₀ + s₀ ⊙ η, 0, 1).
    boundary : {"clip"}
        Boundary rule Π of eq. (2): componentwise clipping to [0, 1] (see module docstring).
    description : str
        Free text.
    """

    objectives: tuple[str, ...] = Field(min_length=1)
    strategies: dict[str, StrategyDynamics] = Field(min_length=1)
    noise_sd: tuple[float, ...] = (0.0,)
    dt: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    initial_mean: tuple[float, ...] = (0.5,)
    initial_std: tuple[float, ...] = (0.0,)
    boundary: Literal["clip"] = "clip"
    description: str = ""

    _names: tuple[str, ...] = PrivateAttr()
    _index: dict[str, int] = PrivateAttr()
    _A: FloatArray = PrivateAttr()
    _b: FloatArray = PrivateAttr()
    _L: FloatArray = PrivateAttr()
    _r: FloatArray = PrivateAttr()
    _m0: FloatArray = PrivateAttr()
    _s0: FloatArray = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        """``measurement_noise`` (a standard deviation here, a variance in policies) was
        renamed ``noise_sd`` so that no name means two units; the old name still works."""
        if isinstance(data, dict) and "measurement_noise" in data:
            warnings.warn(
                "Environment(measurement_noise=...) is now noise_sd= (a standard deviation; "
                "the policy's estimation.measurement_noise is a variance)",
                DeprecationWarning,
                stacklevel=4,
            )
            data = {**data}
            data.setdefault("noise_sd", data.pop("measurement_noise"))
            data.pop("measurement_noise", None)
        return data

    @field_validator("noise_sd", "initial_mean", "initial_std", mode="before")
    @classmethod
    def _scalar_to_tuple(cls, value: object) -> object:
        if isinstance(value, int | float):
            return (float(value),)
        return value

    def _check(self) -> None:
        dim = len(self.objectives)
        if len(set(self.objectives)) != dim:
            raise ValueError(f"objective names must be unique, got {list(self.objectives)}")
        for name, dynamics in self.strategies.items():
            if dynamics.dim != dim:
                raise ValueError(
                    f"strategy {name!r} has dimension {dynamics.dim}, the environment has "
                    f"{dim} objectives {list(self.objectives)}"
                )
        for field in ("noise_sd", "initial_mean", "initial_std"):
            value = getattr(self, field)
            if len(value) not in (1, dim):
                raise ValueError(f"{field} needs 1 or {dim} values, got {len(value)}")
            if not all(math.isfinite(v) for v in value):
                raise ValueError(f"{field} must be finite")
        if min(self.noise_sd) < 0.0 or min(self.initial_std) < 0.0:
            raise ValueError("noise_sd and initial_std are standard deviations (>= 0)")

    def model_post_init(self, context: Any, /) -> None:
        # pydantic runs this inside validation (before "after" validators), so the checks
        # live here and their ValueErrors surface as ValidationError.
        self._check()
        dim = len(self.objectives)
        self._names = tuple(self.strategies)
        self._index = {name: k for k, name in enumerate(self._names)}
        dyn = [self.strategies[name] for name in self._names]
        self._A = np.array([d.A for d in dyn], dtype=np.float64)
        self._b = np.array([d.b for d in dyn], dtype=np.float64)
        self._L = np.array(
            [_matrix_sqrt(np.asarray(d.diffusion, dtype=np.float64)) for d in dyn],
            dtype=np.float64,
        )
        self._r = np.broadcast_to(np.asarray(self.noise_sd), (dim,)).copy()
        self._m0 = np.broadcast_to(np.asarray(self.initial_mean), (dim,)).copy()
        self._s0 = np.broadcast_to(np.asarray(self.initial_std), (dim,)).copy()

    def __eq__(self, other: object) -> bool:
        # compare the configuration only (the cached numpy arrays derive from it)
        if not isinstance(other, Environment):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ lookup

    @property
    def dim(self) -> int:
        """Number of objectives d."""
        return len(self.objectives)

    @property
    def strategy_names(self) -> tuple[str, ...]:
        """Strategy names in index order (the order of ``strategies``)."""
        return self._names

    def strategy_index(self, name: str) -> int:
        """Index of strategy ``name``; raises KeyError naming the known strategies."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(
                f"unknown strategy {name!r}; the environment defines {list(self._names)}"
            ) from None

    def indices(self, strategies: StrategyArg, sessions: int) -> IntArray:
        """Strategy indices, shape (sessions,), from one name/index or one per session."""
        if isinstance(strategies, str):
            return np.full(sessions, self.strategy_index(strategies), dtype=np.intp)
        if isinstance(strategies, int | np.integer):
            index = np.full(sessions, int(strategies), dtype=np.intp)
        elif isinstance(strategies, np.ndarray):
            if strategies.shape != (sessions,):
                raise ShapeError("strategies", (sessions,), strategies.shape)
            index = strategies.astype(np.intp)
        else:
            items: list[str | int] = list(strategies)
            if len(items) != sessions:
                raise ShapeError("strategies", (sessions,), (len(items),))
            index = np.array(
                [self.strategy_index(s) if isinstance(s, str) else int(s) for s in items],
                dtype=np.intp,
            )
        if index.size and (index.min() < 0 or index.max() >= len(self._names)):
            raise IndexError(f"strategy indices must be in [0, {len(self._names)})")
        return index

    def equilibrium(self, strategy: str) -> FloatArray | None:
        """x*_π = −A_π⁻¹ b_π of ``strategy`` (unclipped), or None when A_π is singular."""
        return self.strategies[self._names[self.strategy_index(strategy)]].equilibrium

    def _check_state(self, state: FloatArray) -> None:
        if state.ndim != 2 or state.shape[1] != self.dim:
            raise ShapeError("state", (state.shape[0] if state.ndim else 0, self.dim), state.shape)

    # ------------------------------------------------------------------ dynamics

    def reset(self, sessions: int, rng: np.random.Generator) -> FloatArray:
        """Initial states x_0 = clip(m₀ + s₀ ⊙ η, 0, 1), shape (sessions, d)."""
        if sessions < 0:
            raise ValueError(f"sessions must be >= 0, got {sessions}")
        eta = rng.standard_normal((sessions, self.dim))
        return np.clip(self._m0 + self._s0 * eta, 0.0, 1.0)

    def drift(self, state: FloatArray, strategies: StrategyArg) -> FloatArray:
        """μ(x) = A_π x + b_π for every session, shape (sessions, d)."""
        self._check_state(state)
        return self._drift(state, self.indices(strategies, state.shape[0]))

    def _drift(self, state: FloatArray, index: IntArray) -> FloatArray:
        mu = np.einsum("sij,sj->si", self._A[index], state) + self._b[index]
        return np.asarray(mu, dtype=np.float64)

    def step(
        self, state: FloatArray, strategies: StrategyArg, rng: np.random.Generator
    ) -> FloatArray:
        """One Euler–Maruyama step with the boundary rule, eq. (2); returns a new array.

        Parameters
        ----------
        state : array, shape (sessions, d)
            Current states x_t (in [0, 1]).
        strategies : str, int, or sequence/array of length ``sessions``
            Strategy in force for each session (name or index).
        rng : numpy.random.Generator
            Draws ε_t, one standard normal array of shape (sessions, d).
        """
        self._check_state(state)
        index = self.indices(strategies, state.shape[0])
        mu = self._drift(state, index)
        eps = rng.standard_normal(state.shape)
        noise = np.einsum("sij,sj->si", self._L[index], eps) * math.sqrt(self.dt)
        out: FloatArray = np.clip(state + mu * self.dt + noise, 0.0, 1.0)
        return out

    def observe(self, state: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Scores y = clip(x + v, 0, 1), v ~ N(0, diag(r²)), eq. (3); shape (sessions, d)."""
        self._check_state(state)
        noise = rng.standard_normal(state.shape) * self._r
        return np.clip(state + noise, 0.0, 1.0)

    def rollout(
        self,
        strategies: StrategyArg,
        sessions: int,
        steps: int,
        rng: np.random.Generator,
    ) -> Rollout:
        """Run ``sessions`` sessions for ``steps`` iterations under fixed strategies.

        Iteration t observes y_t of x_t; x_{t+1} = step(x_t). Draw order per iteration:
        observe, then step (after one initial ``reset``).

        Examples
        --------
        >>> from steerloop.simulate.paper import paper_environment
        >>> env = paper_environment()
        >>> run = env.rollout("feature_focused", 8, 50, np.random.default_rng(1))
        >>> run.scores.shape, bool(run.states[-1, :, 0].max() < 0.2)
        ((50, 8, 3), True)
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        index = self.indices(strategies, sessions)
        states = np.empty((steps, sessions, self.dim))
        scores = np.empty((steps, sessions, self.dim))
        x = self.reset(sessions, rng)
        for t in range(steps):
            states[t] = x
            scores[t] = self.observe(x, rng)
            if t + 1 < steps:
                x = self.step(x, index, rng)
        return Rollout(
            states=states,
            scores=scores,
            strategies=np.broadcast_to(index, (steps, sessions)).copy(),
        )
