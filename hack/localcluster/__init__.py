"""A single-machine Kubernetes cluster from pinned upstream binaries, for tests and the demo.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real programs of one
Kubernetes release (built by hack/build-binaries.sh); the node agent (agent.py) takes the
kubelet's place and runs each pod as local processes. See docs/local-cluster.md.
"""
