"""Research and replay: score files and recorded ranges, compare prediction files (parity).

May import worker.kafka, worker.monitoring, worker.core, model_bundles and schemas.
"""
