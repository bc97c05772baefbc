"""Benchmarks of steerloop: step overhead against a numpy floor, flatness, adapters, memory.

Run ``python -m benchmarks.run`` (``make bench``); see :mod:`benchmarks.run` for the options
and ``benchmarks/RESULTS.md`` for the last recorded results with machine and method.
"""
