"""The command line: subcommands, and kubectl's connection flags anywhere on the line.

kubectl accepts `-n`, `--context` and `--kubeconfig` before or after the subcommand
(`kubectl -n demo get vj` and `kubectl get vj -n demo`), and kubectl hands a plugin everything
after its name untouched, so users type both orders here too. The connection flags are declared
on the top-level parser and again on every subcommand with `default=SUPPRESS`: a flag given in
one place is then not overwritten by the other place's absent default.

Usage errors exit with 1, not argparse's 2: kubectl's convention (and this plugin's) is 0 for
success and 1 for any error.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import NoReturn

from videojob_common.archive.filters import DEFAULT_LIMIT, PHASES
from videojob_common.archive.queries import MAX_LIMIT
from videojob_common.pipeline import STAGES


class UsageError(Exception):
    """The command line is wrong; the message says how."""


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors raised instead of printed with exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class KubeFlags:
    """Where to connect: kubectl's global flags (None: not given)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: the connection flags, the subcommand and its arguments."""

    kube: KubeFlags
    command: str
    args: argparse.Namespace


def _connection_flags(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_argument_group("connection (as kubectl; before or after the subcommand)")
    group.add_argument("-n", "--namespace", default=default,
                       help="namespace (default: the context's namespace, else 'default')")
    group.add_argument("--context", default=default,
                       help="kubeconfig context to use (default: the current context)")
    group.add_argument("--kubeconfig", default=default,
                       help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def parser() -> Parser:
    top = Parser(prog="kubectl videojob",
                 description="Submit, watch and manage VideoJobs (videojob.dev/v1alpha1).")
    _connection_flags(top, None)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                  parser_class=Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _connection_flags(sub, argparse.SUPPRESS)
        return sub

    submit = command("submit", "create VideoJobs from manifests")
    submit.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                        help="manifest file or directory ('-' for stdin); repeatable; "
                             "several YAML documents per file")
    submit.add_argument("-w", "--watch", action="store_true",
                        help="then watch each created VideoJob until it finishes")
    submit.add_argument("--timeout", type=_timeout, metavar="SECONDS",
                        help="with --watch: give up after this long (exit code 1)")

    get = command("get", "list VideoJobs, or show one")
    get.add_argument("name", nargs="?", metavar="NAME")
    get.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"],
                     help="output format (default: a table)")
    get.add_argument("-A", "--all-namespaces", action="store_true",
                     help="list VideoJobs in every namespace")

    watch = command("watch", "show live per-stage progress until the VideoJob finishes")
    watch.add_argument("name", metavar="NAME")
    watch.add_argument("--timeout", type=_timeout, metavar="SECONDS",
                       help="give up after this long (exit code 1)")

    logs = command("logs", "print the worker logs of a stage")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("--stage", choices=STAGES,
                      help="stage whose pods to show (default: the current or last stage)")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep streaming until the stage's containers exit")
    logs.add_argument("--tail", type=int, default=-1, metavar="N",
                      help="only the last N lines of each pod (default: all)")

    suspend = command("suspend", "suspend a VideoJob (spec.suspend=true)")
    suspend.add_argument("name", metavar="NAME")
    resume = command("resume", "resume a suspended VideoJob (spec.suspend=false)")
    resume.add_argument("name", metavar="NAME")

    cancel = command("cancel", "delete a VideoJob, stopping everything it started")
    cancel.add_argument("name", metavar="NAME")
    cancel.add_argument("--wait", action="store_true",
                        help="return once the VideoJob is gone (its stages stopped)")
    cancel.add_argument("--timeout", type=_timeout, metavar="SECONDS",
                        help="with --wait: give up after this long (exit code 1)")

    download = command("download", "fetch the finished video")
    download.add_argument("name", metavar="NAME")
    download.add_argument("-o", "--output", metavar="PATH",
                          help="where to write it ('-' for stdout; default: NAME plus the "
                               "output's extension, in the current directory)")
    rerun = command("rerun", "create a VideoJob that draws one scene of NAME otherwise (its "
                             "own seed or description); with the cache, only that scene "
                             "renders again (docs/reuse.md)")
    rerun.add_argument("name", metavar="NAME", help="the origin VideoJob")
    rerun.add_argument("--scene", type=int, required=True, metavar="N",
                       help="the scene to draw again, 0-based (as in plan.json)")
    rerun.add_argument("--seed", type=int, metavar="S",
                       help="the scene's seed, 0 to 2^31-1 (default: a new random one, unless "
                            "--description is given)")
    rerun.add_argument("--description", metavar="TEXT",
                       help="what the scene shows, instead of the planner's description")
    rerun.add_argument("--name", dest="new_name", metavar="NEW",
                       help="the new VideoJob's name (default: NAME-rerun-xxxxx)")
    rerun.add_argument("-w", "--watch", action="store_true",
                       help="then watch the new VideoJob until it finishes")
    rerun.add_argument("--timeout", type=_timeout, metavar="SECONDS",
                       help="with --watch: give up after this long (exit code 1)")

    cache = command("cache", "the stage cache (docs/reuse.md)")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="COMMAND", required=True,
                                          parser_class=Parser)
    stats = cache_commands.add_parser(
        "stats", help="entries, bytes, oldest and newest per namespace and stage; reads the "
                      "storage root, not the cluster (an administrator's command)",
        description="entries, bytes, oldest and newest per namespace and stage")
    _connection_flags(stats, argparse.SUPPRESS)
    stats.add_argument("-A", "--all-namespaces", action="store_true",
                       help="every namespace's cache and every shared cache")
    stats.add_argument("--root", metavar="URI",
                       help="the storage root, file:///… or gs://bucket/… (default: "
                            "$VIDEOJOB_STORAGE_ROOT, else the local cluster's artifacts folder)")

    history = command("history", "finished VideoJobs from the archive (deleted ones too), "
                                 "or one with its stages and GPU-seconds; reads PostgreSQL, "
                                 "not the cluster (an administrator's command: "
                                 "docs/history.md)")
    history.add_argument("name", nargs="?", metavar="NAME|UID",
                         help="show this run: the newest of that name in the namespace, or "
                              "the one with that UID")
    history.add_argument("-A", "--all-namespaces", action="store_true",
                         help="list every namespace's history")
    history.add_argument("--phase", metavar="PHASE",
                         help=f"only this phase ({', '.join(PHASES)})")
    history.add_argument("--since", metavar="WHEN",
                         help="finished since: a duration back from now (30m, 24h, 7d) or an "
                              "RFC 3339 time")
    history.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                         help="label selector (team=a,tier in (gold,silver),!legacy)")
    history.add_argument("--limit", type=int, metavar="N",
                         help=f"rows per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})")
    history.add_argument("--continue", dest="continue_", metavar="TOKEN",
                         help="the next page: the token the page before printed")
    history.add_argument("-o", "--output", choices=["wide", "json"],
                         help="output format (default: a table)")
    history.add_argument("--dsn", metavar="DSN",
                         help="the archive's PostgreSQL connection string (default: "
                              "$VIDEOJOB_ARCHIVE_DSN, else the local cluster's archive/dsn "
                              "file)")
    return top


def parse(argv: list[str]) -> Invocation:
    args = parser().parse_args(argv)
    kube = KubeFlags(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
    if args.command == "logs" and args.tail < -1:
        raise UsageError("--tail must be -1 (all lines) or more")
    return Invocation(kube=kube, command=args.command, args=args)
