"""The engine: deciding and driving one backup's work.

Owns which range runs next (``scheduler``, pure) and how many connections pay
(``governor``), a file's states (``lifecycle``, pure) and its job (``filejob``), the range
fetcher and its retries (``fetcher``, ``filefetch``), resume triage (``resume``), finishing
a file (``finish``), link renewal (``resolver``), the run's shared context (``context``),
the sinks bytes land in (``sinks``), the run itself (``core``), and ``cat``'s in-order
stream (``stream``, ``window``).

May import: ``downloader.wire``, ``disk``, ``progress`` and the floor below them
(``errors``, ``models``, ``results``, ``ranges``, ``text``).
"""
