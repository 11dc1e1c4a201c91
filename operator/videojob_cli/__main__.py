"""`kubectl videojob …` (the `kubectl-videojob` console script) or `python -m videojob_cli`.

This module only parses the command line, connects, and hands each subcommand to its module;
it is also the one place that turns failures into kubectl's shape: one `error: …` line on
stderr and exit code 1 — the command's own errors, the API server's refusals (its message, which
names the field or object at fault), and an unreachable server. Ctrl-C exits with 130, the
shell's code for SIGINT, without a traceback.
"""

from __future__ import annotations

import os
import sys

import urllib3
from kubernetes import client

from videojob_common.archive.filters import Filters

from . import cache, cancel, download, get, history, logs, rerun, submit, suspend, watch
from .cluster import Target, connect, server_message
from .errors import CommandError
from .flags import Invocation, UsageError, parse


def dispatch(inv: Invocation, target: Target) -> int:
    a = inv.args
    match inv.command:
        case "submit":
            return submit.run(target, a.filename, explicit_namespace=inv.kube.namespace is not None,
                              then_watch=a.watch, timeout=a.timeout)
        case "get":
            return get.run(target, a.name, a.output, a.all_namespaces)
        case "watch":
            return watch.run(target, a.name, a.timeout)
        case "logs":
            return logs.run(target, a.name, a.stage, a.follow, a.tail)
        case "suspend" | "resume":
            return suspend.run(target, a.name, suspend=inv.command == "suspend")
        case "cancel":
            return cancel.run(target, a.name, a.wait, a.timeout)
        case "download":
            return download.run(target, a.name, a.output)
        case "rerun":
            return rerun.run(target, a.name, a.scene, a.seed, a.description, a.new_name,
                             then_watch=a.watch, timeout=a.timeout)
    raise CommandError(f"unknown command {inv.command!r}")


def history_request(inv: Invocation) -> history.Request:
    a = inv.args
    return history.Request(
        name=a.name, all_namespaces=a.all_namespaces, output=a.output, dsn=a.dsn,
        filters=Filters(phase=a.phase, since=a.since, selector=a.selector, limit=a.limit,
                        after=a.continue_))


def main(argv: list[str] | None = None) -> int:
    try:
        inv = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    try:
        if inv.command == "history":  # reads the archive: no cluster needed
            return history.run(history_request(inv), inv.kube)
        if inv.command == "cache":  # reads the storage root: no cluster needed
            return cache.run(inv.args.root, history.namespace_of(inv.kube,
                                                                 inv.args.all_namespaces))
        return dispatch(inv, connect(inv.kube))
    except CommandError as e:
        print(f"error: {e}", file=sys.stderr)
    except client.ApiException as e:
        print(f"error: {server_message(e)}", file=sys.stderr)
    except urllib3.exceptions.HTTPError as e:
        print(f"error: cannot reach the Kubernetes API server: {' '.join(str(e).split())}",
              file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubectl videojob logs x | head`: the reader has gone
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
