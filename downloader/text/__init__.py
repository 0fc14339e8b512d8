"""Text for people and from strangers: sizes, tables and the one scrubber (``fmt``), secrets
kept out of logs (``redact``), restore steps a DBA can paste (``nextsteps``), and JSON from
outside parsed within bounds (``safejson``).

May import: ``downloader.errors`` only. (Log setup, which wires these to the progress
reporter, is the command line's: :mod:`downloader.cli.logsetup`.)
"""
