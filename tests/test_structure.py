"""The shape of the package, read from its source: no import cycle, and no method named
in benchmark/ (a method describes itself; adding one is a folder and a registration)."""
from __future__ import annotations

import ast
from pathlib import Path

from benchmark.registry import list_methods

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"
# the paper's experiments are defined on its named models (e.g. Fig. 6: cDDPM's
# conditioning against DDPM); every other module works for any registered method
NAMED_MODELS_ALLOWED = ("experiments",)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    return {id(node) for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for node in ast.walk(block)}


def import_graph() -> dict[str, set[str]]:
    """module -> the benchmark modules it imports, at its top or inside a function (not
    under TYPE_CHECKING); importing a package's own parent is implicit and left out."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] \
                    if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) \
                    if node.level else node.module
                names = [f"{target}.{a.name}" for a in node.names]
                graph[module] |= {n if n in modules else target for n in names}
            elif isinstance(node, ast.Import):
                graph[module] |= {a.name for a in node.names}
        graph[module] = {t for t in graph[module] if t in modules and t != module
                         and not module.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert graph["benchmark.runner"] >= {"benchmark.validate", "benchmark.runconfig"}
    assert cycles(graph) == []


def test_no_method_is_named_in_benchmark():
    names = set(list_methods())
    found = []
    for module, path in _modules().items():
        if module.split(".")[1:2] and module.split(".")[1] in NAMED_MODELS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value!r}")
    assert found == []
