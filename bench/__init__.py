"""Benchmarks of the policy layer against raw redis-py, the seed's hand-written code and other libraries.

Not part of the test suite: run ``python -m bench`` (see ``bench/__main__.py`` and the README's
"Performance" section). tests/test_bench_smoke.py only checks that the harness still runs.
"""
