"""Throughput and latency benchmarks of the scoring worker (issue 7): ``python -m bench``.

Each measurement lives in its own module; ``bench.__main__`` runs them against one
broker, repeats each run, and writes the table to ``docs/benchmarks.md``:

- ``passthrough``: the ceiling, a confluent-kafka consume -> produce loop without parsing;
- ``e2e``: ``scoring-worker run`` as a subprocess, end to end, with its peak RSS;
- ``naive``: the per-message worker users would otherwise write;
- ``core``: the in-process scoring core against the bare ``predict_proba``;
- ``latency``: event latency at a fixed offered rate (``pace`` is the paced producer).
"""
