"""Talking to the Huawei Cloud RDS and IAM APIs: signing, auth, HTTP client, parsing.

May import: ``downloader.wire`` (its error map, backoff and HTTP dates), ``text`` and the
floor (``errors``, ``models``).
"""
