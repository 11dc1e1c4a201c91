# VideoJob — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LOCALCLUSTER_ROOT ?= $(CURDIR)/.cluster
export KUBECONFIG_LOCAL := $(LOCALCLUSTER_ROOT)/kubeconfig

.DEFAULT_GOAL := help
.PHONY: help setup venv binaries cluster-up cluster-down cluster-status operator-up operator-down \
        test test-unit test-e2e test-realnodes faults demo bench lint clean manifests images

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: venv binaries ## everything the tests and the demo need (packages, Python env, binaries)

$(VENV)/.installed: pyproject.toml
	hack/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[operator,cli,worker,gateway,test,dev]'
	touch $@

venv: $(VENV)/.installed ## the project's Python environment in .venv/

binaries: ## build (or find in the cache) the pinned Kubernetes, etcd and helm binaries
	@hack/build-binaries.sh >/dev/null
	@hack/build-helm.sh >/dev/null

cluster-up: setup ## start the local cluster (idempotent); kubeconfig in .cluster/kubeconfig
	$(BIN)/python -m localcluster up

cluster-down: ## stop every process the local cluster started
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m localcluster down; fi

operator-up: cluster-up ## run the operator, redis-server and the HTTP gateway (127.0.0.1:18080) in the background (logs in .cluster/logs/)
	$(BIN)/python hack/operator_dev.py up

operator-down: ## stop the operator and redis-server
	@if [ -x $(BIN)/python ]; then $(BIN)/python hack/operator_dev.py down; fi

cluster-status: ## which components are running
	$(BIN)/python -m localcluster status

test: setup ## unit and e2e tests, then the real-node tests (each starts its cluster, stops it after)
	$(BIN)/pytest -m 'not disruptive and not realnode'
	$(MAKE) --no-print-directory test-realnodes

test-realnodes: setup ## the user path on real kubelets and containerd (LOCALCLUSTER_RUNTIME=containerd)
	LOCALCLUSTER_RUNTIME=containerd $(BIN)/pytest -m realnode

test-unit: venv ## unit tests only (no cluster)
	$(BIN)/pytest -m 'not e2e'

test-e2e: setup ## e2e tests only (on the node agent)
	$(BIN)/pytest -m 'e2e and not realnode'

faults: setup ## the fault suite (the disruptive scenarios only run here), with figures
	$(BIN)/pytest -m fault

demo: operator-up ## run examples/videojob.yaml end to end on the local cluster
	$(BIN)/python hack/demo.py examples/videojob.yaml

bench: setup ## benchmarks; results in bench/results/, merged by bench/summary.py
	$(BIN)/python -m bench.cluster
	$(BIN)/python -m bench.media
	$(BIN)/python -m bench.stage_resources
	$(BIN)/python -m bench.admission
	$(BIN)/python -m bench.admission_pass
	$(BIN)/python -m bench.orchestration
	$(BIN)/python -m bench.handoff
	$(BIN)/python -m bench.writes
	$(BIN)/python -m bench.progress
	$(BIN)/python -m bench.scale --restart
	$(BIN)/python -m bench.realnodes
	$(BIN)/python -m bench.archive
	$(BIN)/python -m bench.archive_handoff
	$(BIN)/python -m bench.cache_handoff
	$(BIN)/python -m bench.reuse
	$(BIN)/python -m bench.narration
	$(BIN)/python -m bench.gateway
	$(BIN)/python -m bench.summary

images: ## build the images with podman (localhost/videojob/*: operator, worker, redis, pause, coredns)
	hack/build-images.sh

manifests: venv binaries ## render manifests/ from the Helm chart (a test fails when they drift)
	$(BIN)/python hack/render_manifests.py

lint: venv ## ruff and mypy
	$(BIN)/ruff check hack operator worker_image common gateway tests bench
	$(BIN)/mypy common/videojob_common hack/localcluster operator/videojob_operator operator/videojob_cli worker_image/videojob_worker gateway/videojob_gateway

clean: cluster-down ## remove local state (.cluster/, .venv/)
	rm -rf $(LOCALCLUSTER_ROOT) $(VENV)
