"""``rds-backup sync``: the nightly mirror of a fleet's backups.

``plan`` holds the pure decisions (shards, targets, retention, exit code), ``folders`` the
mirror's layout on disk, ``metrics`` the Prometheus text file, ``report`` what a run did,
and ``run`` the run itself.
"""
