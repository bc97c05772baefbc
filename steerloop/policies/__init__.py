"""Switching policies: the YAML format, safe loading, conditions and presets.

>>> from steerloop.policies import load_preset
>>> policy = load_preset("paper")
>>> policy.objectives
['security', 'efficiency', 'functionality']
>>> [rule.name for rule in policy.rules_by_priority][:2]
['runaway-severity', 'strong-interference']
"""

from steerloop.errors import PolicyError, PolicyIssue
from steerloop.policies import schema as _schema
from steerloop.policies.conditions import CompiledCondition, compile_condition
from steerloop.policies.loader import (
    available_presets,
    load_policy,
    load_preset,
    parse_policy,
    policy_json_schema,
)
from steerloop.policies.references import reference_problems, validate_policy
from steerloop.policies.schema import *  # noqa: F403 - every model of the policy format

__all__ = [
    "CompiledCondition",
    "PolicyError",
    "PolicyIssue",
    "available_presets",
    "compile_condition",
    "load_policy",
    "load_preset",
    "parse_policy",
    "policy_json_schema",
    "reference_problems",
    "validate_policy",
]
__all__ += _schema.__all__
