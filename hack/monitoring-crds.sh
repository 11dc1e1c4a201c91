#!/usr/bin/env bash
# Prints the directory holding the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor,
# PrometheusRule, ...) at a pinned version, fetched from the Go module proxy into Go's module
# cache (outside the repository; reused when present). The chart's monitoring objects are
# checked against these with a server-side dry run.
set -euo pipefail
VERSION=v0.80.1
module=github.com/prometheus-operator/prometheus-operator
dir=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$module@$VERSION" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
echo "$dir/example/prometheus-operator-crd"
