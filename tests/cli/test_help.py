"""``--help`` fits one screen (the common options, an example, where the rest is);
``--help-all`` lists every option under headings, each once."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click

from downloader.cli import cli

HEADINGS = ["What to fetch", "Where", "Transfer", "Checks", "Output", "API", "Other options"]


def _help(*args: str, flag: str = "--help-all") -> str:
    result = subprocess.run(
        [sys.executable, "-m", "downloader", *args, flag],
        env={"PATH": os.environ["PATH"], "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _listed_options(text: str) -> list[str]:
    """The option names in the left column: each row starts with two spaces and a dash."""
    names: list[str] = []
    for line in text.splitlines():
        if re.match(r"  -", line):
            column = re.split(r"\s{2,}", line.strip())[0]
            names += re.findall(r"(?:^|[ ,/]\s*)(--?[a-z0-9][a-z0-9-]*)", column)
    return names


def test_download_help_groups_every_option_once() -> None:
    text = _help("download")
    headings = [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Z][\w ]*:", line)]
    assert headings == HEADINGS
    download = cli.commands["download"]  # type: ignore[attr-defined]
    expected = sorted(
        [
            *(
                o
                for p in download.params
                if isinstance(p, click.Option)
                for o in (*p.opts, *p.secondary_opts)
            ),
            "-h",
            "--help",
        ]
    )
    assert sorted(_listed_options(text)) == expected
    # Each option sits under its heading, not only somewhere in the text.
    sections = dict(zip(HEADINGS, re.split(r"^[A-Z][\w ]*:$", text, flags=re.M)[1:], strict=True))
    assert "--database" in _listed_options(sections["What to fetch"])
    assert "--limit-rate" in _listed_options(sections["Transfer"])
    assert "--project-id" in _listed_options(sections["API"])
    assert _listed_options(sections["Other options"]) == ["--help-all", "-h", "--help"]


def test_project_id_states_its_default_once() -> None:
    text = _help("download")
    assert text.count("HUAWEICLOUD_SDK_PROJECT_ID") == 1


def test_the_help_a_dba_sees_fits_one_screen() -> None:
    for command in ("download", "sync", "cat"):
        text = _help(command, flag="--help")
        assert len(text.splitlines()) <= 50, (command, len(text.splitlines()))
        assert "Common options:" in text and "Example:" in text
        assert f"rds-backup {command} --help-all" in text.replace("\n", " ")
        full = _help(command)
        # Every option of the short help is in the reference, which has them all.
        assert set(_listed_options(text)) <= set(_listed_options(full))
        assert len(_listed_options(full)) > len(_listed_options(text))


def test_the_readme_shows_the_quick_start_first_and_links_pages_that_exist() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    lines = (repo / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    assert "## Quick start" in lines[:60]
    text = "\n".join(lines)
    assert "./scripts/demo.sh" in text and "./scripts/test.sh" in text
    for target in re.findall(r"\]\(((?:docs|examples|bench)/[^)#]*)\)", text):
        assert (repo / target).exists(), target
