#!/usr/bin/env bash
# Makes a kind node look like the local cluster's GPU node, so the e2e suite runs on kind:
# advertises `nvidia.com/gpu: 2` (an extended resource patched into the node's status, as the
# Kubernetes docs describe for advertising extended resources), and adds the GPU label and taint.
# No device plugin runs, so pods get no NVIDIA_VISIBLE_DEVICES; the suite checks that only on
# the local cluster.
#
#   kind create cluster --config hack/kind-config.yaml
#   hack/kind-gpu-node.sh kind-worker2
set -euo pipefail
node=${1:-kind-worker2}
kubectl=${KUBECTL:-kubectl}
"$kubectl" label node "$node" nvidia.com/gpu.present=true --overwrite
"$kubectl" taint node "$node" nvidia.com/gpu=present:NoSchedule --overwrite
"$kubectl" patch node "$node" --subresource=status --type=json \
  -p '[{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "2"}]'
"$kubectl" get node "$node" -o custom-columns='NAME:.metadata.name,GPU:.status.allocatable.nvidia\.com/gpu'
