"""The wire: one ranged GET on the network, end to end.

Owns the request a GET sends and the verdict on its answer (``answer``), the seam a transfer
writes into (``transfer``, ``sink``), the transfer itself on libcurl (``curlget`` for one
ranged GET, ``curlmulti`` for the run's connections on the event loop), the one map from a
transport's errors to ours (``netmap``), the shared rate limit (``ratelimit``), the backoff
policy (``retry``) and HTTP dates (``httpdates``). It knows nothing of files, journals or
schedules.

May import: ``downloader.errors``, ``models``, ``results``, ``ranges``, ``text``.
"""
