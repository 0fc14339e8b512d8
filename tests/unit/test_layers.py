"""The folders are the architecture: imports run downward only.

cli -> sync, chain -> download -> engine, api, sim -> wire, disk, progress -> the floor
(errors, models, results, ranges, text). Every import counts for the floors, a
function-level or TYPE_CHECKING one included: an import placed inside a function to dodge a
cycle is a cycle. For cycles between modules of one package, a TYPE_CHECKING import (a type
hint naming the object that owns a handler, as the simulator's handlers name the simulator)
is left out: it never runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "downloader"

# The floor each part stands on; a part imports only from parts on lower floors (and itself).
FLOORS: dict[str, int] = {
    "errors": 0,
    "models": 0,
    "results": 0,
    "ranges": 0,
    "text": 0,
    "__init__": 0,
    "wire": 1,
    "disk": 1,
    "content": 1,
    "progress": 1,
    "engine": 2,
    "api": 2,
    "download": 3,
    "preview": 3,
    "sim": 3,
    "chain": 4,
    "sync": 4,
    "cli": 5,
    "__main__": 6,
}
FLOOR_PARTS = {name for name, floor in FLOORS.items() if floor == 0}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_only(tree: ast.Module) -> set[int]:
    """The ids of nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                inside.update(id(n) for n in ast.walk(stmt))
    return inside


def imports_of(name: str, path: Path, known: set[str], *, typing: bool = True) -> set[str]:
    """Every downloader module ``name`` imports, anywhere in its body (with ``typing``
    False, leaving out those under ``if TYPE_CHECKING:``)."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if typing else _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("downloader"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("downloader"):
                continue
            # ``from downloader.disk import storage`` imports the module downloader.disk.storage
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found.update(subs or {target})
    return {m for m in found if m in known and m != name}


def part_of(module: str) -> str:
    rest = module.split(".")[1:]
    return rest[0] if rest else "__init__"


def graph(*, typing: bool = True) -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods), typing=typing) for name, path in mods.items()}


def test_every_part_has_a_floor() -> None:
    unplaced = {part_of(m) for m in modules()} - set(FLOORS)
    assert not unplaced, f"place these in FLOORS: {sorted(unplaced)}"


def test_imports_only_run_downward() -> None:
    upward = []
    for module, deps in graph().items():
        here = part_of(module)
        for dep in deps:
            there = part_of(dep)
            if here == there or (here in FLOOR_PARTS and there in FLOOR_PARTS):
                continue
            if FLOORS[there] >= FLOORS[here]:
                upward.append(f"{module} -> {dep}")
    assert not upward, "imports that do not run downward:\n" + "\n".join(sorted(upward))


def test_no_module_imports_itself_back() -> None:
    deps = graph(typing=False)
    done: set[str] = set()
    path: list[str] = []

    def visit(m: str) -> None:
        if m in path:
            cycle = [*path[path.index(m) :], m]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if m in done:
            return
        path.append(m)
        for d in sorted(deps[m]):
            # A package's __init__ re-exporting its modules is not a cycle with them.
            if not d.startswith(m + "."):
                visit(d)
        path.pop()
        done.add(m)

    for m in sorted(deps):
        visit(m)


def test_few_modules_lie_flat_and_every_package_says_what_it_owns() -> None:
    flat = [p.name for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    assert len(flat) <= 12, sorted(flat)
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.parent.name}/ has no docstring saying what it owns"
        assert "May import" in doc, f"{init.parent.name}/ does not say which packages it may use"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule can fail: a wire module importing the engine is caught."""
    probe = tmp_path / "downloader" / "wire" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from downloader.engine import core\n")
    known = {"downloader.wire.probe", "downloader.engine", "downloader.engine.core"}
    assert imports_of("downloader.wire.probe", probe, known) == {"downloader.engine.core"}
    assert FLOORS[part_of("downloader.engine.core")] > FLOORS[part_of("downloader.wire.probe")]
