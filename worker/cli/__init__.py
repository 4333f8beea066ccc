"""The ``scoring-worker`` command: thin commands over the packages below.

May import everything in worker/, model_bundles and schemas; nothing imports it.
"""
