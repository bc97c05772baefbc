"""Estimator settings derived from a policy, in one place.

Every estimator of a session is built from a :class:`ModelSettings`, and every snapshot is
restored under one: the policy's ``estimation``, ``severity`` and ``fleet`` blocks are read
here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from steerloop.estimators.drift import DriftConfig
from steerloop.estimators.severity_model import SeverityModelConfig
from steerloop.policies.schema import Policy, SeveritySource

__all__ = ["NOISE_PRIOR", "NOISE_PRIOR_WEIGHT", "ModelSettings"]

#: Prior measurement variance R₀ of ``measurement_noise: auto`` (a score noise sd of 0.01).
NOISE_PRIOR = 1e-4
#: Weight of that prior, in pseudo-pairs of transitions (steerloop.estimators.noise, eq. 2).
NOISE_PRIOR_WEIGHT = 1.0


@dataclass(frozen=True)
class ModelSettings:
    """What a session's estimators need from the policy."""

    objectives: tuple[str, ...]
    drift: DriftConfig
    severity: SeverityModelConfig
    severity_source: SeveritySource | None
    severity_threshold: float
    forgetting: float
    min_effective: float
    process_noise: float
    measurement_noise: Literal["auto"] | float
    input: Literal["raw", "filtered"]
    dt: float
    warmup: int

    @classmethod
    def from_policy(cls, policy: Policy) -> ModelSettings:
        """The settings of ``policy``."""
        est = policy.estimation
        return cls(
            objectives=tuple(policy.objectives),
            drift=DriftConfig(
                len(policy.objectives),
                forgetting=est.forgetting,
                dt=est.dt,
                warmup=est.warmup,
                initial_covariance=est.initial_covariance,
            ),
            severity=SeverityModelConfig(
                forgetting=policy.severity.forgetting,
                dt=est.dt,
                warmup=est.warmup,
                phase_margin=policy.severity.phase_margin,
                phase_z=policy.severity.phase_z,
                phase_transitions=policy.severity.phase_transitions,
                initial_covariance=est.initial_covariance,
            ),
            severity_source=policy.severity.source,
            severity_threshold=policy.severity.threshold,
            forgetting=est.forgetting,
            min_effective=est.min_effective_samples,
            process_noise=est.process_noise,
            measurement_noise=est.measurement_noise,
            input=est.input,
            dt=est.dt,
            warmup=est.warmup,
        )

    @property
    def dim(self) -> int:
        """Number of objectives d."""
        return len(self.objectives)

    @property
    def known_after(self) -> int:
        """Transitions (own and lent) before a strategy's drift is used for decisions:
        the warm-up, and at least two per parameter of a row of Θ (2(d + 1)), so that a
        strategy tried for a few steps is not planned with on the strength of as many
        points as it has parameters."""
        return max(self.warmup, 2 * (self.dim + 1))
