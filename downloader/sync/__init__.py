"""``rds-backup sync``: the nightly mirror of a fleet's backups.

``plan`` holds the pure decisions (shards, targets, retention, exit code), ``folders`` the
mirror's layout on disk, ``metrics`` the Prometheus text file, ``report`` what a run did,
and ``run`` the run itself.

May import: ``downloader.download`` and everything below it (``engine``, ``api``, ``wire``,
``disk``, ``progress``, the floor); never ``chain`` or ``cli``.
"""
