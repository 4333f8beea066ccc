# Every target here is what CI runs too. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KAFKA_PORT ?= 9092
# the local broker's SASL_SSL listener (scripts/lib/kafka-security.sh); empty: none
export KAFKA_SASL_SSL_PORT ?= $(shell echo $$(($(KAFKA_PORT) + 2)))
export DEMO_DRIFT ?=
export DEMO_FORMAT ?=
export SCHEMA_REGISTRY_PORT ?= 8081
# pytest-xdist: tests run in TEST_WORKERS processes (most of a test's time is waiting on the
# broker and on worker processes); an integration module's tests share one process (its
# fixtures are built once), broker-control tests another, on a broker of their own
# (tests/integration/conftest.py). TEST_WORKERS=0: one process, in order.
TEST_WORKERS ?= 4
XDIST := $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadgroup)

.PHONY: help install test soak unit lint schemas-check demo bench chaos \
        kafka-up kafka-down kafka-reset cluster-up cluster-down cluster-reset registry-up registry-down clean deploy-tools static-checks \
        container-test k8s-check

help:
	@grep -E '^[a-z0-9-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements-dev.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv with the locked dependency set

lock: ## re-resolve requirements.lock (runtime) and requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -c requirements.lock -q -o requirements-dev.lock

lint: $(STAMP) ## ruff + mypy strict + import contracts (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

schemas-check: $(STAMP) ## exported JSON Schemas equal the committed ones
	$(BIN)/python -m tools.schema_export --check schemas/json

unit: $(STAMP) ## tests that need no broker (the soak ones left out)
	$(BIN)/pytest -q -m "not soak" $(XDIST) tests/unit

# The deploy checks run once, as tests/unit/deploy (the same checks as scripts/static-checks,
# which stays for a quick look at deploy/ alone). --durations: where the time went.
test: $(STAMP) kafka-up registry-up deploy-tools ## lint, schema check, unit + integration tests (deploy checks included) on a real broker and registry
	$(MAKE) lint schemas-check
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) SCHEMA_REGISTRY_URL=http://127.0.0.1:$(SCHEMA_REGISTRY_PORT) \
		$(BIN)/pytest -q -m "not soak" $(XDIST) --durations=15 tests/unit tests/integration

soak: $(STAMP) kafka-up registry-up ## the long tier: fault and catalogue runs marked `soak` (after make test in .ci/run)
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) SCHEMA_REGISTRY_URL=http://127.0.0.1:$(SCHEMA_REGISTRY_PORT) \
		$(BIN)/pytest -q -m soak $(XDIST) --durations=15 tests/unit tests/integration; rc=$$?; [ $$rc = 5 ] && rc=0; exit $$rc

container-test: $(STAMP) kafka-up ## build the image with podman, run it against the local broker
	scripts/container-test

demo: $(STAMP) kafka-up $(if $(filter avro,$(DEMO_FORMAT)),registry-up) ## build the demo bundle and run the whole job end to end (DEMO_FORMAT=avro: on Avro)
	KAFKA_BOOTSTRAP_SERVERS=$${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$(KAFKA_PORT)} \
	SCHEMA_REGISTRY_URL=$${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$(SCHEMA_REGISTRY_PORT)} $(BIN)/python -m examples.demo

bench: $(STAMP) kafka-up registry-up ## throughput/latency/CPU benchmarks, writes docs/benchmarks.md
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) SCHEMA_REGISTRY_URL=http://127.0.0.1:$(SCHEMA_REGISTRY_PORT) \
		$(BIN)/python -m bench

deploy-tools: $(STAMP) ## install promtool (Debian prometheus), chromium, hadolint, docker-compose, helm, kubeconform for checks
	scripts/install-prometheus
	scripts/install-chromium
	scripts/install-hadolint
	scripts/install-compose
	scripts/install-helm-tools

static-checks: deploy-tools ## Dockerfile, compose, Prometheus config/rules/tests, Grafana dashboard, Helm chart
	scripts/static-checks

k8s-check: $(STAMP) ## the Helm chart against a real kube-apiserver + etcd (built from Go modules, 15+ min cold)
	scripts/k8s-check

CHAOS_SEEDS ?= 1 2 3 4 5
# CHAOS_CLUSTER=1: against the three-node cluster (make cluster-up), with cluster faults
CHAOS_CLUSTER ?=
# on the cluster (three JVMs on the same 2 cores) fewer events, slower: 60,000 at 150/s is a
# 400 s feed, long enough for 20 steps of which 7-12 wait for the cluster to be whole again
CHAOS_ARGS ?= $(if $(CHAOS_CLUSTER),--events 60000 --rate 150 --faults 20)
export KAFKA_CLUSTER_PORT_BASE ?= 29092
CLUSTER_BOOTSTRAP = $(shell b=$(KAFKA_CLUSTER_PORT_BASE); echo 127.0.0.1:$$b,127.0.0.1:$$((b+1)),127.0.0.1:$$((b+2)))
chaos: $(STAMP) $(if $(CHAOS_CLUSTER),cluster-up,kafka-up) ## nemesis soak: ~25 faults vs 3 workers over 200,000 events, per seed (CHAOS_SEEDS, CHAOS_ARGS, CHAOS_CLUSTER=1)
	PYTHONPATH=$(CURDIR) KAFKA_BOOTSTRAP_SERVERS=$(if $(CHAOS_CLUSTER),$(CLUSTER_BOOTSTRAP),127.0.0.1:$(KAFKA_PORT)) \
		$(BIN)/python tests/integration/chaos.py \
		$(foreach s,$(CHAOS_SEEDS),--seed $(s)) $(if $(CHAOS_CLUSTER),--cluster) $(CHAOS_ARGS)

kafka-up: ## start the local single-node Apache Kafka (KRaft)
	scripts/kafka-local up

kafka-down: ## stop it
	scripts/kafka-local down

kafka-reset: ## stop it and wipe its data
	scripts/kafka-local reset

cluster-up: ## start the local three-node KRaft cluster (ports from KAFKA_CLUSTER_PORT_BASE, 29092)
	scripts/kafka-local cluster up

cluster-down: ## stop it
	scripts/kafka-local cluster down

cluster-reset: ## stop it and wipe its data
	scripts/kafka-local cluster reset

registry-up: ## start the local Schema Registry (rivven-schema; built with cargo once)
	scripts/schema-registry up

registry-down: ## stop it (it keeps schemas in memory: they are gone)
	scripts/schema-registry down

clean: ## remove .venv, .cache (the broker's data, tool caches) and build output
	rm -rf $(VENV) .cache build *.egg-info
