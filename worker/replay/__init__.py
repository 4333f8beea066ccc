"""Replay: score a bounded range of a recorded topic as the live worker would, and compare
two prediction files record by record (parity).

May import worker.kafka, worker.monitoring, worker.core, model_bundles and schemas.
"""
