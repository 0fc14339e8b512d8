"""The quick start's scripts (``scripts/demo.sh``, ``scripts/test.sh``), run for real in a copy
of ``scripts/`` with stand-ins on PATH for what a newcomer's machine may lack or would take
minutes to do (python3 without its venv module, a pip install from PyPI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")


def checkout(tmp_path: Path) -> Path:
    """A folder holding a copy of scripts/ and no .venv, as a fresh clone has."""
    root = tmp_path / "clone"
    shutil.copytree(REPO / "scripts", root / "scripts")
    return root


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def run(root: Path, script: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(root)}
    return subprocess.run(
        ["bash", str(root / "scripts" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def python3_without_venv(tmp_path: Path) -> Path:
    """A python3 like Debian's without python3-venv: ``-m venv`` leaves a .venv without pip
    behind and fails with ensurepip's message; anything else is the real Python."""
    bin_dir = tmp_path / "bin"
    executable(
        bin_dir / "python3",
        "#!/bin/sh\n"
        'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
        '  mkdir -p "$3/bin" && ln -s /bin/false "$3/bin/python"\n'
        "  echo 'The virtual environment was not created successfully because ensurepip is"
        " not available.' >&2\n"
        "  exit 1\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n',
    )
    return bin_dir


@pytest.mark.parametrize("script", ["demo.sh", "test.sh"])
def test_a_failing_venv_is_named_not_hidden(tmp_path: Path, script: str) -> None:
    root = checkout(tmp_path)
    result = run(root, script, python3_without_venv(tmp_path))
    assert result.returncode == 1
    # Python's own message, then what failed and the package that fixes it.
    assert "ensurepip is not available" in result.stderr
    assert "'python3 -m venv .venv' failed" in result.stderr
    assert "python3-venv" in result.stderr
    # The half-made .venv is gone: the next run fails the same clear way, not on it.
    assert not (root / ".venv").exists()


def test_a_half_made_venv_says_to_remove_it(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    executable(root / ".venv" / "bin" / "python", "#!/bin/sh\nexit 1\n")  # no pip in it
    result = run(root, "demo.sh", tmp_path / "bin")
    assert result.returncode == 1
    assert ".venv has no pip" in result.stderr
    assert "rm -rf .venv" in result.stderr


def test_too_old_a_python_is_named(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    executable(
        bin_dir / "python3",
        "#!/bin/sh\n"
        'case "$*" in *version_info*) exit 1 ;; *sys.version*) echo 3.9.2; exit 0 ;; esac\n'
        "exit 2\n",
    )
    result = run(checkout(tmp_path), "demo.sh", bin_dir)
    assert result.returncode == 1
    assert "Python 3.9.2; rds-backup needs 3.11 or newer" in result.stderr


def test_first_install_shows_progress_later_ones_are_quiet(tmp_path: Path) -> None:
    """A .venv whose python is a stand-in: ``pip install`` records its arguments and puts
    the console script in place, as the real one would."""
    root = checkout(tmp_path)
    calls = tmp_path / "pip-calls"
    executable(
        root / ".venv" / "bin" / "python",
        "#!/bin/sh\n"
        'if [ "$*" = "-m pip --version" ]; then echo pip 24.0; exit 0; fi\n'
        f'echo "$*" >> {calls}\n'
        'bin=$(dirname "$0")\n'
        'printf \'#!/bin/sh\\necho demo ran "$@"\\n\' > "$bin/rds-backup"\n'
        'chmod +x "$bin/rds-backup"\n',
    )
    first = run(root, "demo.sh", tmp_path / "bin")
    assert first.returncode == 0, first.stderr
    assert "installing rds-backup into .venv (first run only)..." in first.stderr
    assert "demo ran demo" in first.stdout
    second = run(root, "demo.sh", tmp_path / "bin")
    assert second.returncode == 0, second.stderr
    assert "first run only" not in second.stderr
    first_args, second_args = calls.read_text().splitlines()
    assert "--quiet" not in first_args.split()
    assert "--quiet" in second_args.split()
    assert first_args.endswith("-e .") and second_args.endswith("-e .")


def test_ci_still_runs_the_suite_through_test_sh() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "./scripts/test.sh" in ci
    assert os.access(REPO / "scripts" / "test.sh", os.X_OK)
