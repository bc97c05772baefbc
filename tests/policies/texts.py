"""Policy texts shared by several test modules."""

from __future__ import annotations

#: A small valid policy: two objectives, two strategies, no rules.
HEAD = """\
objectives: [security, efficiency]
strategies:
  secure: {prompt: Fix every security issue first., emphasis: {security: 1.0}}
  fast: {prompt: Make the code faster., emphasis: {efficiency: 1.0}}
initial: secure
"""
