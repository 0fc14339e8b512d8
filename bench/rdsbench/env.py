"""What one benchmark run shares: options, workdir, data, nginx, the tools' commands, failures.

May import: datasets, nginx.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from .datasets import Data
from .nginx import Nginx


@dataclass(slots=True)
class Env:
    args: argparse.Namespace
    workdir: Path
    data: Data
    nginx: Nginx
    rds: list[str]
    aria2c: str
    curl: str
    failures: list[str] = field(default_factory=list)
    baseline: list[str] | None = None  # another rds-backup build, same flags
