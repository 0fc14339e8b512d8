"""rdsbench: benchmark rds-backup against aria2c and curl on data served by a local nginx.

Not a test: it measures. One command from a fresh clone (with the package installed)::

    python bench/run.py                 # full run: 2 GiB, 64 x 4 MiB, WAN-like 512 MiB + 8 x 16 MiB
    python bench/run.py --quick         # small sizes, under two minutes
    python bench/run.py --sets big --rounds 5
    python bench/run.py --wan-rate 4m   # per-connection cap of the WAN-like set
    python bench/run.py --install       # apt-get install nginx-light aria2 curl first

What it does:

* generates the data once into ``<workdir>/data`` (random bytes from ``os.urandom``, so
  nothing compresses or deduplicates) and records sizes and SHA-256 in
  ``<workdir>/data/manifest.json``; later runs reuse the files;
* writes ``<workdir>/nginx.conf`` and runs nginx in the foreground as a child
  (``daemon off``, ``sendfile on``, logs, pid and temp files in the workdir), listening on a
  free loopback port: ``/...`` unlimited, ``/slow/...`` the same files behind a
  per-connection ``limit_rate`` (how object storage behaves across a real network);
  nginx is stopped at the end, also on Ctrl-C or an error;
* for every data set and round, runs each tool into a fresh empty folder, rotating the
  order each round; measures wall time, CPU seconds (user + sys) and peak RSS of that
  child (``os.wait4``), counts requests and connections in nginx's access log, then checks
  every output file's size and SHA-256 (a mismatch marks the run FAILED) and deletes it;
* prints a table per set (median of the verified rounds for time, throughput and CPU;
  highest peak RSS of any round), the ratios, and pass/fail against the targets.

Notes on what is and is not measured:

* the page cache is not dropped (that needs root and would measure the disk, not the
  downloader): source files are served from memory when they fit, as after the first read;
* ``os.sync()`` runs between runs (not timed), so one tool's dirty pages are not written
  back during the next tool's run; rds-backup fsyncs its part files for its journal on its
  own time, aria2c and curl do not fsync at all;
* the wall time of rds-backup includes starting Python and its imports (~0.2 s; with
  ``--links-file`` no aiohttp: the bytes go through libcurl);
* nginx shares the two cores with the client, as a local object store would.

Standard library only, plus the installed ``rds-backup`` (and ``trustme`` for the tls set).

The modules, each importing only those above it:

* ``base``      units, ``BenchError`` and ``Terminated``, where bench/ is
* ``datasets``  the data sets and their generated source files (``manifest.json``)
* ``nginx``     nginx's config, the run's TLS certificate, start/stop, the access log
* ``env``       what one run shares (options, workdir, data, nginx, tool commands)
* ``tools``     finding or installing the tools; each tool's command line per set
* ``measure``   one command's wall time, CPU seconds and peak RSS
* ``runs``      one tool on one set: fresh folder, measured run, outputs verified
* ``tables``    summaries (median of the verified rounds) and their table
* ``targets``   the targets, and each summary judged against its peers
* ``machine``   the header: git state, SHA-256 speed, machine, tool versions
* ``suites``    one data set's rounds, table and verdicts; the stream set
* ``cli``       options, the whole run, errors and signals -> message and exit code

``bench/run.py`` is the entry point (``python bench/run.py [options]``); ``python -m
bench.run`` from the repository and ``python -m rdsbench`` from bench/ start the same.
"""
