"""The code's shape holds: no import loop in any package, and no configuration read from the
environment when the operator's modules are imported (it is built once, in __main__)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {
    "videojob_common": REPO / "common" / "videojob_common",
    "videojob_operator": REPO / "operator" / "videojob_operator",
    "videojob_cli": REPO / "operator" / "videojob_cli",
    "videojob_gateway": REPO / "gateway" / "videojob_gateway",
    "videojob_worker": REPO / "worker_image" / "videojob_worker",
    "localcluster": REPO / "hack" / "localcluster",
    "videojob_testkit": REPO / "tests" / "videojob_testkit",
    "bench": REPO / "bench",
}


def modules(package: str) -> dict[str, Path]:
    root = PACKAGES[package]
    out = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules `name` imports: anywhere in it (under TYPE_CHECKING and in
    functions too), `from . import x` as the module x."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for a in node.names:
                target = f"{base}.{a.name}"
                out.add(target if target in known else base)
    return {m for m in out if m in known and m != name}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_package_imports_itself_in_a_loop(package: str) -> None:
    mods = modules(package)
    graph = {name: imports(name, path, set(mods)) for name, path in mods.items()}
    # A package's __init__ only describes it; a module importing its package is not a loop.
    graph = {n: {m for m in deps if m != package} for n, deps in graph.items()}
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])


def test_a_loop_is_found() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_operator_reads_no_environment_at_import() -> None:
    """Only config.load (called from __main__) reads the environment."""
    reads_no_environment_at_import("videojob_operator")


def test_the_gateway_reads_no_environment_at_import() -> None:
    """Only config.load (called from __main__) reads the environment."""
    reads_no_environment_at_import("videojob_gateway")


def reads_no_environment_at_import(package: str) -> None:
    for name, path in modules(package).items():
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level: what runs at import
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            reads = [n for n in ast.walk(node)
                     if isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv")]
            assert not reads, f"{name}: {ast.unparse(node)[:80]}"
