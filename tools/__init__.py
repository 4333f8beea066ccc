"""Developer tools: not part of the product (not in the wheel or the image).

``python -m tools.schema_export`` (the committed JSON Schemas), ``python -m
tools.trust.generate`` (the reviewed catalogue of trusted types, from ``tools.trust.probe``).
May import anything of the project; nothing of the product imports them.
"""
