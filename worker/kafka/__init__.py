"""The Kafka edge: consumer, producer, admin calls, error classes and bounded ranges.

The only package that imports confluent_kafka; may import worker.core, model_bundles, schemas.
"""
