"""The benchmark's package (``bench/rdsbench/``) and its entry point (``bench/run.py``): every
module imports, imports run one way, no module outgrows a head, and ``--help`` answers from
each way of starting it, naming every option bench/README.md documents. Catches a broken
import in CI without running a benchmark (no nginx, no data)."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
PACKAGE = BENCH / "rdsbench"

# Bottom to top: a module imports only from modules before it (as its __init__ lists them).
ORDER = (
    "base",
    "datasets",
    "nginx",
    "env",
    "tools",
    "measure",
    "runs",
    "tables",
    "targets",
    "machine",
    "suites",
    "cli",
    "__main__",
)
MAX_LINES = 450


def package_modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def documented_options() -> list[str]:
    """The options in bench/README.md's options table (``| `--quick` | ...``)."""
    text = (BENCH / "README.md").read_text()
    return re.findall(r"^\| `(--[a-z-]+)", text, flags=re.M)


def test_the_order_names_every_module() -> None:
    assert sorted(ORDER) == package_modules()


@pytest.mark.parametrize("name", [m for m in ORDER if m != "__main__"])
def test_every_module_imports(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module(f"rdsbench.{name}")
    assert module.__doc__ and "May import:" in module.__doc__


def test_imports_run_downward() -> None:
    wrong = []
    for name in ORDER:
        below = set(ORDER[: ORDER.index(name)])
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                if (node.module or "").split(".")[0] not in below:
                    wrong.append(f"{name} imports .{node.module}")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                # an absolute import would load a second copy under `python -m bench.run`
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                wrong += [f"{name} imports {n}" for n in names if n.split(".")[0] == "rdsbench"]
    assert wrong == []


def test_no_module_outgrows_a_head() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}
    # run.py only starts the package
    assert len((BENCH / "run.py").read_text().splitlines()) < 40


def help_text(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *argv, "--help"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        ([str(BENCH / "run.py")], "elsewhere"),  # python bench/run.py, from any folder
        (["-m", "bench.run"], "repo"),  # python -m bench.run, from the repository
        (["-m", "rdsbench"], "bench"),  # python -m rdsbench, from bench/
    ],
)
def test_help_names_every_documented_option(argv: list[str], where: str, tmp_path: Path) -> None:
    cwd = {"elsewhere": tmp_path, "repo": REPO, "bench": BENCH}[where]
    text = help_text(argv, cwd)
    options = documented_options()
    assert len(options) >= 10  # the README table was found
    assert text.startswith("usage: bench/run.py")
    assert [o for o in options if o not in text] == []


def test_an_unknown_set_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--sets", "big,nope", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "bench/run.py: error: --sets: unknown set(s) nope; use big, tls, many, wan, stream"
    )
    assert list(tmp_path.iterdir()) == []  # options are checked before anything is written
