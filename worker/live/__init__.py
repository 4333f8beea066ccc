"""The live worker: the consume-score-produce loop, delivery guarantees, dead letters, health.

May import worker.kafka, worker.monitoring, worker.core, model_bundles and schemas.
"""
