"""``evaluate``: compare models on labelled events (metrics, paired bootstrap, reports).

May import worker.core, model_bundles and schemas; no Kafka, no live loop.
"""
