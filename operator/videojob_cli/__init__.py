"""`kubectl videojob`: a kubectl plugin for VideoJobs (the `kubectl-videojob` console script).

kubectl runs any executable named `kubectl-<name>` on the PATH as `kubectl <name>`, handing it
the rest of the command line, so the plugin takes kubectl's own connection flags (`-n`,
`--context`, `--kubeconfig`, and `$KUBECONFIG`) and prints what kubectl would print
(`videojob.videojob.dev/NAME created`, `kubectl get`-style tables, `error: …` on stderr).

Modules: `flags` (the command line), `cluster` (kubeconfig, context and namespace), `resource`
(the parts of a VideoJob the plugin reads), `videojobs` (the VideoJob API and its watch),
`render` (tables, progress bars and watch lines, pure), `errors` (the failure reported as one
line), and one module per subcommand: `submit`, `get`, `watch`, `logs`, `suspend`
(suspend/resume), `cancel`, `download`, and `history` (finished VideoJobs from the PostgreSQL
archive, read without a cluster). Usage: docs/kubectl-plugin.md, docs/history.md.
"""
