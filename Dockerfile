# syntax=docker/dockerfile:1
# scoring-worker container image.
#
#   docker build -t scoring-worker .
#   docker run --rm -p 8000:8000 --read-only \
#     -e SCORING_WORKER_BOOTSTRAP_SERVERS=kafka:9092 -e SCORING_WORKER_INPUT_TOPIC=events \
#     -e SCORING_WORKER_OUTPUT_TOPIC=predictions -e SCORING_WORKER_DLQ_TOPIC=dead-letters \
#     scoring-worker
# (`make container-test` runs this image with podman against a local broker.)
#
# Stage 1 installs the locked runtime dependencies (requirements.lock, exact versions,
# binary wheels only) into a virtualenv, then the project itself with --no-deps, and
# bakes the demo bundle. Stage 2 is the same slim base with only that virtualenv, the
# bundle and the demo scripts, running as an unprivileged user.
#
# The base is pinned to the exact Python the project is developed, tested and its
# bundles built with (3.11.7). Loading a bundle compares Python's major.minor (a patch
# level may differ: docs/bundle.md "Version policy") and the libraries exactly. Move it
# together with the dev/CI interpreter. For byte-for-byte reproducible builds pin the
# digest as well (--build-arg PYTHON_IMAGE=python:3.11.7-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# Behind a TLS-intercepting proxy, lend its CA bundle to pip for this stage only, e.g.
#   podman build -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
#                --build-arg PIP_CERT=/run/host-ca.crt .
# Unset (the default): pip uses its own CA bundle. Nothing of it reaches the final stage.
ARG PIP_CERT

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Build tooling for the project's own (pure Python) wheel, pinned.
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir pip==26.0.1 setuptools==80.9.0

# Locked runtime dependencies first: this layer survives source edits.
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps --only-binary=:all: -r requirements.lock

COPY pyproject.toml README.md ./
COPY model_bundles ./model_bundles
COPY schemas ./schemas
COPY worker ./worker
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
 && scoring-worker --help >/dev/null

# Demo bundle, built and verified at image build time (deterministic digest).
COPY examples ./examples
RUN scoring-worker bundle build \
        --config examples/penguins/config.toml \
        --data examples/penguins/penguins.csv \
        --out /opt/bundles/penguins \
 && scoring-worker bundle verify /opt/bundles/penguins


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="scoring-worker" \
      org.opencontainers.image.description="Streaming scoring worker: Kafka in, scikit-learn bundle, predictions out, Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"

# Unprivileged user with a fixed uid/gid (so volume permissions can be planned).
RUN groupadd --system --gid 10001 scoring \
 && useradd --system --uid 10001 --gid scoring --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin scoring

# Everything is owned by root and only readable by the worker: bundles are
# mounted read-only at /opt/bundles in production (the demo bundle is baked in).
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/bundles /opt/bundles
COPY --from=builder /src/examples /app/examples

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    SCORING_WORKER_METRICS_HOST=0.0.0.0 \
    SCORING_WORKER_METRICS_PORT=8000 \
    SCORING_WORKER_BUNDLE=/opt/bundles/penguins

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# /healthz = process alive (readiness is /readyz, for orchestrators that use it).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SCORING_WORKER_METRICS_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["scoring-worker"]
CMD ["run"]
