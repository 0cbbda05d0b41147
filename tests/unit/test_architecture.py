"""The layout tells the data flow: package imports point one way.

The graph is built from the AST of every module under ``src/upbitpipe`` and includes imports
inside functions (a lazy import is still a dependency; hiding one is how cycles creep in).
Nodes are the first-level packages (``collector``, ``sinks``, ...); top-level modules
(``config``, ``errors``, ``backoff``, ...) count as their own node.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import upbitpipe

SRC = Path(upbitpipe.__file__).parent

# Who may import the offline exchange: itself, its CLI, the demo that runs it.
REPLAY_IMPORTERS = {"replay", "cli.replay", "demo", "cli.demo"}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join(parts), ast.parse(path.read_text(encoding="utf-8"))


def _imports(module: str, tree: ast.Module) -> Iterator[str]:
    """Every ``upbitpipe.*`` module imported by ``module`` (absolute or relative)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("upbitpipe."):
                    yield alias.name.removeprefix("upbitpipe.")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level] if node.level else []
                target = ".".join([*base, node.module or ""]).strip(".")
                yield target
            elif node.module and node.module.startswith("upbitpipe."):
                yield node.module.removeprefix("upbitpipe.")
            elif node.module == "upbitpipe":
                for alias in node.names:
                    yield alias.name
        elif (  # importlib.import_module("upbitpipe.x"): a hidden import is still an import
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("upbitpipe.")
        ):
            yield str(node.args[0].value).removeprefix("upbitpipe.")


def _package(module: str) -> str:
    return module.split(".")[0]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, tree in _modules():
        src = _package(module)
        graph.setdefault(src, set())
        for target in _imports(module, tree):
            dst = _package(target)
            if dst and dst != src:
                graph[src].add(dst)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_graph_is_built_from_real_imports() -> None:
    graph = package_graph()
    # a known edge of the data flow, so an empty or broken graph cannot pass
    assert "sinks" in graph["collector"]
    assert "config" in graph["sinks"]


def test_no_cycle_between_packages() -> None:
    cycle = _find_cycle(package_graph())
    assert cycle is None, "package import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_production_code_does_not_import_the_replay_server() -> None:
    offenders = []
    for module, tree in _modules():
        allowed = any(module == a or module.startswith(a + ".") for a in REPLAY_IMPORTERS)
        if allowed:
            continue
        for target in _imports(module, tree):
            if target == "replay" or target.startswith("replay."):
                offenders.append(f"{module} imports upbitpipe.{target}")
    assert offenders == []
