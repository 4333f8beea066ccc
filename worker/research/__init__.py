"""Research: score a file of events with a bundle (``score``), check a bundle against a
sample of the live topic (``bundle check``). Files in, files out; no Kafka.

May import worker.replay (a recording is read as replay reads it), worker.core,
model_bundles and schemas.
"""
