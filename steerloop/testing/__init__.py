"""Public test doubles: use them in your own tests of code built on steerloop.

Sections (one per kind of double):

* **Stores** — :class:`FaultyStore`: a :class:`~steerloop.stores.StateStore` that forwards to
  a real store and fails on demand (refuses, drops a reply after applying, times out), or
  runs a hook between operations (another worker's update between this worker's read and
  write).
* **Scorers** — :class:`ScriptedScorer` (returns the scores you script, NaN included),
  :class:`RaisingScorer`, :class:`HangingScorer` (blocks beyond any timeout until released)
  and :class:`NaNScorer`: implementations of the :class:`~steerloop.scoring.Scorer` protocol
  to test how your loop handles missing values (the controller fails open: each becomes a
  *missing* value, counted in ``errors.scorer``).
* **Estimators** — :func:`check_estimator`: runs an estimator configured as yours is against
  its batch (closed-form) solution and reports the largest relative difference.

Nothing here is imported by ``import steerloop``.
"""

from steerloop.testing._estimators import EstimatorCheck, EstimatorKind, check_estimator
from steerloop.testing._scorers import HangingScorer, NaNScorer, RaisingScorer, ScriptedScorer
from steerloop.testing._stores import Fault, FaultyStore, Operation

__all__ = [
    "EstimatorCheck",
    "EstimatorKind",
    "Fault",
    "FaultyStore",
    "HangingScorer",
    "NaNScorer",
    "Operation",
    "RaisingScorer",
    "ScriptedScorer",
    "check_estimator",
]
