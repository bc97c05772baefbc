"""Pure math: the online estimators and the planner (numpy only; no I/O, locks or clocks).

* :mod:`~steerloop.estimators.kalman` — objective-state Kalman filter (filterpy);
* :mod:`~steerloop.estimators.rls` — recursive least squares as sufficient statistics;
* :mod:`~steerloop.estimators.drift` — per-strategy linear drift, its residual statistics;
* :mod:`~steerloop.estimators.noise` — measurement and process noise from the residuals;
* :mod:`~steerloop.estimators.spectrum` — eigenvalues, per-step rate and regime;
* :mod:`~steerloop.estimators.interference` — correlation of score increments;
* :mod:`~steerloop.estimators.ewstats` — exponentially weighted moments;
* :mod:`~steerloop.estimators.severity` / :mod:`~steerloop.estimators.severity_model` — the
  severity SDE and its online fit;
* :mod:`~steerloop.estimators.planner` — expected utility of schedules at the horizon.

Nothing here imports another steerloop package but :mod:`steerloop.errors`.
"""
