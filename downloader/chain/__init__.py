"""Point-in-time chains: which backups restore an instance to a moment (``select``, pure),
their download into one folder per backup (``run``, built on
:func:`downloader.download.run_download`), and the chain folder's manifest (``manifest``).

May import: ``downloader.download`` and everything below it (``engine``, ``api``, ``wire``,
``disk``, ``progress``, the floor); never ``sync`` or ``cli``.
"""
