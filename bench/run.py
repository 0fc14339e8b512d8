#!/usr/bin/env python3
"""Benchmark rds-backup against aria2c and curl on data served by a local nginx.

Not a test: it measures. One command from a fresh clone (with the package installed)::

    python bench/run.py                 # full run: 2 GiB, 64 x 4 MiB, WAN-like 512 MiB + 8 x 16 MiB
    python bench/run.py --quick         # small sizes, under two minutes
    python bench/run.py --sets big --rounds 5
    python bench/run.py --wan-rate 4m   # per-connection cap of the WAN-like set
    python bench/run.py --install       # apt-get install nginx-light aria2 curl first

The code is the ``rdsbench`` package next to this file (its docstring maps the modules;
bench/README.md says what is measured); this file only starts it.
"""

import sys

if __package__:  # python -m bench.run, from the repository
    from .rdsbench.cli import main
else:  # python bench/run.py: Python puts bench/ first on sys.path
    from rdsbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
