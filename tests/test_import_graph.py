"""The package's layering: no import cycles between styleforge modules, counting the
lazy imports inside functions too (a cycle hidden in a function is still a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import styleforge

ROOT = Path(styleforge.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for file in ROOT.rglob("*.py"):
        parts = file.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("styleforge", *parts)).removesuffix(".__init__")
        found[name] = file
    return found


def _imports(file: Path, modules: dict[str, Path]) -> set[str]:
    deps = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("styleforge"):
            deps.add(node.module)
            deps |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name.startswith("styleforge")}
    return {d for d in deps if d in modules}


def import_graph() -> dict[str, set[str]]:
    """Module -> styleforge modules it imports, without a module's edge to its own
    enclosing packages (``from styleforge.pkg import sibling`` inside ``pkg`` is how a
    package refers to its parts, not a cycle)."""
    modules = _modules()
    graph = {}
    for name, file in modules.items():
        deps = _imports(file, modules)
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep, [*path, dep])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_no_module_imports_itself_through_others() -> None:
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_gatys_engines_do_not_import_the_driver() -> None:
    graph = import_graph()
    for engine in ("styleforge.gatys_torch", "styleforge.numpy_engine.gatys"):
        assert "styleforge.gatys" not in graph[engine]
        assert "styleforge.gatys_engine" in graph[engine]
