"""The disk: everything that lives in an output folder.

Owns safe paths, part files and atomic writes (``storage``), the folder's lock (``lock``),
the resume journal (``journal``), checksums and whole-file hashing (``digest``,
``hashing``), the manifest (``manifest``), what a folder holds (``holdings``) and
``verify DIR`` (``verify``). It knows nothing of the network or of schedules.

May import: ``downloader.errors``, ``models``, ``results``, ``ranges``, ``text``.
"""
