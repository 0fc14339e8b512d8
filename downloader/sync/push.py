"""``--metrics-push URL``: a batch job's metrics sent to a Prometheus Pushgateway at the end
of every run, the Prometheus convention for jobs that no scraper can catch alive.

The group is ``job=<job>`` (and ``shard=K`` for ``--shard K/N``): each push replaces that
group's series (HTTP PUT), so a shard's run never wipes another shard's. A push that fails
is a warning, never the run's failure: the run's own exit code stands, and a stale series
is what the staleness alert is for.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.parse
import urllib.request

from downloader.errors import UsageError

__all__ = ["JOB", "check_push_url", "push_metrics", "push_target"]

log = logging.getLogger("rds_backup.metrics")

JOB = "rds-backup"
TIMEOUT = 10.0  # seconds: a gateway that does not answer must not hold the run


def check_push_url(url: str) -> str:
    """The Pushgateway's base URL, refused (UsageError) unless it is http(s) with a host."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--metrics-push {url!r}: give the Pushgateway as http(s)://HOST:PORT")
    return url.strip().rstrip("/")


def push_target(url: str, job: str = JOB, shard: int | None = None) -> str:
    """``URL/metrics/job/<job>[/shard/<K>]``, each label value path-escaped."""
    path = f"/metrics/job/{urllib.parse.quote(job, safe='')}"
    if shard is not None:
        path += f"/shard/{shard}"
    return check_push_url(url) + path


def push_metrics(url: str, text: str, *, job: str = JOB, shard: int | None = None) -> bool:
    """PUT ``text`` (Prometheus text format) to the group; False, with a warning, when the
    gateway cannot be reached or refuses it."""
    target = push_target(url, job, shard)
    request = urllib.request.Request(  # noqa: S310 (http or https only: check_push_url)
        target,
        data=text.encode(),
        method="PUT",
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310
            answer.read()
    except urllib.error.HTTPError as exc:
        log.warning("the Pushgateway refused the metrics: HTTP %d %s", exc.code, exc.reason)
        return False
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        log.warning("cannot push the metrics to the Pushgateway: %s", reason)
        return False
    return True
