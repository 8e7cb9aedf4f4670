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
    for engine in ("styleforge.gatys.torch_engine", "styleforge.gatys.numpy_engine"):
        assert "styleforge.gatys.driver" not in graph[engine]
        assert "styleforge.gatys.engine" in graph[engine]


def folder_graph(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """The import graph between the direct children (modules and subpackages) of
    ``package``: child A -> child B when any module inside A imports any module inside B."""
    depth = package.count(".") + 2

    def child(module: str) -> str | None:
        return ".".join(module.split(".")[:depth]) if module.startswith(package + ".") else None

    folders: dict[str, set[str]] = {}
    for module, deps in graph.items():
        if (source := child(module)) is not None:
            targets = {child(d) for d in deps} - {None, source}
            folders.setdefault(source, set()).update(t for t in targets if t is not None)
    for targets in list(folders.values()):
        for target in targets:
            folders.setdefault(target, set())
    return folders


def _packages(graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if any(other.startswith(m + ".") for other in graph))


def test_no_folder_imports_itself_through_others() -> None:
    """Every folder is one floor: on each level of the package (the top level, and inside
    every subpackage) the children import each other without a cycle, lazy imports counted."""
    graph = import_graph()
    cycles = {pkg: cycle for pkg in _packages(graph) if (cycle := find_cycle(folder_graph(graph, pkg)))}
    assert not cycles, "; ".join(f"in {pkg}: {' -> '.join(cycle)}" for pkg, cycle in cycles.items())


def test_the_folder_graph_sees_a_cycle_through_subpackages() -> None:
    graph = {"p": set(), "p.a": set(), "p.a.x": {"p.b.y"}, "p.b": set(), "p.b.y": {"p.a"}, "p.c": {"p.a.x"}}
    assert folder_graph(graph, "p") == {"p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": {"p.a"}}
    assert find_cycle(folder_graph(graph, "p")) == ["p.a", "p.b", "p.a"]


def test_the_package_root_holds_at_most_eight_modules() -> None:
    flat = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(flat) <= 8, flat


def test_the_layers_point_down() -> None:
    """The foundations import no workflow: utils, images, runtime, nets and vgg never reach
    the packages that train, transfer, deploy, serve or parse the command line."""
    graph = folder_graph(import_graph(), "styleforge")
    upper = {f"styleforge.{name}" for name in ("training", "transfer", "deploy", "service", "cli", "video", "gatys")}
    for lower in ("utils", "images", "runtime", "nets", "vgg", "models", "ops", "losses"):
        assert not graph[f"styleforge.{lower}"] & upper, (lower, graph[f"styleforge.{lower}"] & upper)
