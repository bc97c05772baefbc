"""Closed-form propagation of a Gaussian belief through a learnt linear drift.

For a strategy with Euler drift x_{t+1} = F x_t + c + w_t (F = I + AΔt, c = bΔt,
w ~ N(0, Q)), a belief N(m, C) after n steps is (docs/architecture.md, "Planning")

    m_n = Fⁿ m + G_n c,                 G_n = Σ_{j<n} F^j = V g_n(Λ) V⁻¹,
    C_n = Fⁿ C Fⁿᵀ + S_n + U_n,         S_n = Σ_{j<n} F^j Q F^jᵀ = V (M ∘ h_n) Vᴴ,      (1)

with F = V Λ V⁻¹, g_n(λ) = (1 − λⁿ)/(1 − λ), M = V⁻¹ Q V⁻ᴴ, h_n(λ_a, λ_b) =
(1 − (λ_a λ̄_b)ⁿ)/(1 − λ_a λ̄_b) (n where the ratio is 0/0), and U_n = (I − Fⁿ) Cov(x̂*)
(I − Fⁿ)ᵀ the first-order effect of the estimate's own error (:func:`equilibrium_covariance`).
:class:`Dynamics` holds the eigen forms of several strategies at once (one batched
decomposition) and evaluates (1) for many (strategy, steps) pairs in one pass; the planner
(:mod:`steerloop.estimators.planner`) values schedules with it.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739 (the drift model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Dynamics",
    "Parts",
    "StrategyModel",
    "advance",
    "advance_shared",
    "equilibrium_covariance",
]

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]
#: (Fⁿ, Gₙc, Sₙ + Uₙ) of a batch of (strategy, steps) pairs, eq. (1).
Parts = tuple[FloatArray, FloatArray, FloatArray]


@dataclass(frozen=True)
class StrategyModel:
    """What the planner knows of one strategy: its Euler drift, noise and uncertainty.

    Attributes
    ----------
    A, b : ndarray
        Drift matrix (d, d) and offset (d,) per unit time.
    Q : ndarray (d, d)
        Process-noise covariance of one step.
    equilibrium_covariance : ndarray (d, d) or None
        Cov(x̂*) of the estimate (:func:`equilibrium_covariance`); ``None``: no uncertainty.
    dt : float
        Δt.
    """

    A: FloatArray
    b: FloatArray
    Q: FloatArray
    equilibrium_covariance: FloatArray | None = None
    dt: float = 1.0


def equilibrium_covariance(
    A: FloatArray, b: FloatArray, residual_covariance: FloatArray, scale: FloatArray
) -> FloatArray | None:
    """Cov(x̂*) = A⁻¹ (φ*ᵀ K φ*) C_e A⁻ᵀ (delta method, module docstring); ``None`` if singular.

    ``scale`` is K, the (d + 1) × (d + 1) factor with Cov(vec Θ̂) = C_e ⊗ K.
    """
    try:
        inverse = np.linalg.inv(A)
    except np.linalg.LinAlgError:
        return None
    x_star = -inverse @ b
    phi = np.append(x_star, 1.0)
    leverage = float(phi @ scale @ phi)
    covariance = leverage * inverse @ residual_covariance @ inverse.T
    covariance = 0.5 * (covariance + covariance.T)
    return covariance if np.isfinite(covariance).all() else None


class Dynamics:
    """Eigen-decompositions of every strategy's transition, for the closed forms (1)."""

    def __init__(self, models: Sequence[StrategyModel]) -> None:
        d = models[0].b.shape[0]
        self.dim = d
        dt = np.array([m.dt for m in models])[:, None, None]
        values, vectors = np.linalg.eig(np.eye(d) + np.stack([m.A for m in models]) * dt)
        self.values: ComplexArray = values.astype(np.complex128)
        self.vectors: ComplexArray = vectors.astype(np.complex128)
        self.inverse, invertible = _inverses(self.vectors)
        # ‖V‖_F ‖V⁻¹‖_F bounds cond₂(V): a nearly defective F cannot use the eigen form.
        with np.errstate(over="ignore", invalid="ignore"):
            bound = np.linalg.norm(self.vectors, axis=(1, 2)) * np.linalg.norm(
                self.inverse, axis=(1, 2)
            )
        self.ok = invertible & np.isfinite(self.values).all(axis=1) & (bound < 1e8)
        self.offset = np.stack([m.b * m.dt for m in models])
        Q = np.stack([m.Q for m in models])
        self.noise: ComplexArray = self.inverse @ Q @ self.inverse.conj().transpose(0, 2, 1)
        self.x_cov: FloatArray | None = None
        if any(m.equilibrium_covariance is not None for m in models):
            zeros = np.zeros((d, d))
            self.x_cov = np.stack(
                [
                    zeros if m.equilibrium_covariance is None else m.equilibrium_covariance
                    for m in models
                ]
            )

    def transitions(self, index: NDArray[np.intp], steps: NDArray[np.int64]) -> Parts:
        """Fⁿ, Gₙc and Sₙ + Uₙ (Uₙ = (I − Fⁿ) Cov(x̂*) (I − Fⁿ)ᵀ) of strategies ``index`` for
        ``steps``."""
        lam = self.values[index]
        n = steps.astype(np.float64)[:, None]
        power = lam**n
        pair = lam[:, :, None] * lam.conj()[:, None, :]
        pair_power = power[:, :, None] * power.conj()[:, None, :]  # (λ_a λ̄_b)ⁿ = λ_aⁿ conj(λ_bⁿ)
        with np.errstate(divide="ignore", invalid="ignore"):
            near_one = np.abs(1.0 - lam) <= 1e-12
            geometric = np.where(near_one, n, (1.0 - power) / np.where(near_one, 1.0, 1.0 - lam))
            pair_one = np.abs(1.0 - pair) <= 1e-12
            pair_sum = np.where(
                pair_one, n[:, :, None], (1.0 - pair_power) / np.where(pair_one, 1.0, 1.0 - pair)
            )
        V, Vi = self.vectors[index], self.inverse[index]
        Fn = np.real((V * power[:, None, :]) @ Vi)
        Gn = np.real((V * geometric[:, None, :]) @ Vi)
        Sn = np.real(V @ (self.noise[index] * pair_sum) @ V.conj().transpose(0, 2, 1))
        drift = (Gn @ self.offset[index][:, :, None])[:, :, 0]
        if self.x_cov is None:  # no model carries parameter uncertainty (posterior draws)
            return Fn, drift, Sn
        gap = np.eye(self.dim)[None] - Fn
        return Fn, drift, Sn + gap @ self.x_cov[index] @ gap.transpose(0, 2, 1)

    def propagate(
        self,
        index: NDArray[np.intp],
        mean: FloatArray,
        cov: FloatArray,
        steps: NDArray[np.int64],
    ) -> tuple[FloatArray, FloatArray]:
        """Beliefs (B, d), (B, d, d) propagated by strategies ``index`` for ``steps``, eq. (1).

        The transitions are computed once per distinct (strategy, steps) pair.
        """
        pairs, where = _distinct(index, steps)
        return advance(self.transitions(*pairs), where, mean, cov)

    def propagate_shared(
        self, index: NDArray[np.intp], mean: FloatArray, cov: FloatArray, steps: NDArray[np.int64]
    ) -> tuple[FloatArray, FloatArray]:
        """:meth:`propagate` of one belief (d,), (d, d) for every row: computed once per
        distinct (strategy, steps) pair, then gathered."""
        pairs, where = _distinct(index, steps)
        new_mean, new_cov = advance_shared(self.transitions(*pairs), mean, cov)
        return new_mean[where], new_cov[where]


def advance(
    parts: Parts, where: NDArray[np.intp], mean: FloatArray, cov: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Eq. (1) for beliefs (B, d), (B, d, d), row b by the transition ``where[b]`` of ``parts``
    (Fⁿ, Gₙc, Sₙ + Uₙ of :meth:`Dynamics.transitions`)."""
    Fn, drift, spread = (part[where] for part in parts)
    new_mean = (Fn @ mean[:, :, None])[:, :, 0] + drift
    new_cov = Fn @ cov @ Fn.transpose(0, 2, 1) + spread
    return new_mean, 0.5 * (new_cov + new_cov.transpose(0, 2, 1))


def advance_shared(
    parts: Parts, mean: FloatArray, cov: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Eq. (1) for one belief (d,), (d, d) by every transition of ``parts``."""
    Fn, drift, spread = parts
    new_mean = Fn @ mean + drift
    new_cov = Fn @ cov @ Fn.transpose(0, 2, 1) + spread
    return new_mean, 0.5 * (new_cov + new_cov.transpose(0, 2, 1))


def _inverses(vectors: ComplexArray) -> tuple[ComplexArray, NDArray[np.bool_]]:
    """V⁻¹ of every eigenbasis (B, d, d) and which exist (a singular V keeps V in its row)."""
    try:
        inverse: ComplexArray = np.linalg.inv(vectors).astype(np.complex128, copy=False)
        return inverse, np.ones(vectors.shape[0], dtype=np.bool_)
    except np.linalg.LinAlgError:  # one singular basis fails the batch: invert one by one
        inverse = vectors.copy()
        invertible = np.zeros(vectors.shape[0], dtype=np.bool_)
        for i, basis in enumerate(vectors):
            try:
                inverse[i] = np.linalg.inv(basis)
            except np.linalg.LinAlgError:
                continue
            invertible[i] = True
        return inverse, invertible


def _distinct(
    index: NDArray[np.intp], steps: NDArray[np.int64]
) -> tuple[tuple[NDArray[np.intp], NDArray[np.int64]], NDArray[np.intp]]:
    """The distinct (strategy, steps) pairs, in order of first appearance, and each row's."""
    position: dict[tuple[int, int], int] = {}
    where = [
        position.setdefault(pair, len(position))
        for pair in zip(index.tolist(), steps.tolist(), strict=True)
    ]
    first = np.fromiter((pair[0] for pair in position), dtype=np.intp, count=len(position))
    count = np.fromiter((pair[1] for pair in position), dtype=np.int64, count=len(position))
    return (first, count), np.array(where, dtype=np.intp)
