"""What tests, benchmarks and the demo share to drive the worker from outside.

Polling with a deadline (`polling`), free loopback ports (`ports`), HTTP and metric reads
(`http`), topics on a real broker (`topics`), and `scoring-worker` subprocesses with their
log in a file (`processes`). It sits beside `bench/` and `examples/` rather than under
`tests/` so that `python -m bench` and `make demo` import it without importing the test
tree, and it is not shipped: setuptools packages only `worker`, `model_bundles` and
`schemas`. It imports the product only through its public command line (subprocesses)
and `model_bundles.build` (to build the demo bundle); nothing in the product imports it.
"""
