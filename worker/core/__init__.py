"""The pure batch scorer, record encoding, recordings and topic ranges: bytes in, outcomes out.

No I/O and no Kafka client; may import model_bundles and schemas only.
"""
