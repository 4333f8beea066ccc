"""Monitoring: Prometheus metrics, drift against the bundle's reference, the HTTP endpoint.

May import worker.core, model_bundles and schemas; never the Kafka edge or the live loop.
"""
