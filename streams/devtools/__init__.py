"""Development and test tooling: the embedded Tansu broker and synthetic rollout sessions.

Used by the tour (`python -m streams broker`), the tests, the benches and the demo; not by the
publisher or the worker.
"""
