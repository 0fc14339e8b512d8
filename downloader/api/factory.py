"""Build a ready :class:`~downloader.api.client.RdsClient` from settings and an environment.

The one place that turns "region or endpoint, project, credentials from the environment" into
a client: the CLI's commands and the demo (which points it at the simulator) both use it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from downloader.errors import UsageError
from downloader.text.redact import register_secret

if TYPE_CHECKING:
    from downloader.api.client import RdsClient

__all__ = ["ApiSettings", "load_ca_bundle", "open_client"]


def load_ca_bundle(path: str) -> ssl.SSLContext:
    """A TLS context trusting the CA certificates in the PEM file ``path``.

    Raises :class:`~downloader.errors.UsageError` naming the file when it cannot be read or
    holds no PEM certificate (OpenSSL's own words would name neither).
    """
    try:
        return ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:  # before OSError, of which it is one
        reason = (exc.reason or "unreadable").replace("_", " ").lower()
        raise UsageError(f"{path} is not a PEM bundle of CA certificates ({reason})") from exc
    except OSError as exc:
        raise UsageError(f"cannot read CA bundle {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where the RDS API is and how hard to use it (``--endpoint`` ... ``--api-timeout``)."""

    endpoint: str | None = None  # wins over region
    region: str | None = None
    project_id: str | None = None
    iam_endpoint: str | None = None
    ca_bundle: str | None = None  # PEM file of CAs to trust
    api_rate: int = 50  # calls per minute
    api_timeout: float = 120.0  # seconds for one call, retries included

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context trusting ``ca_bundle``; None means the system's default trust."""
        return load_ca_bundle(self.ca_bundle) if self.ca_bundle else None


@asynccontextmanager
async def open_client(
    settings: ApiSettings, env: Mapping[str, str] | None = None
) -> AsyncIterator[RdsClient]:
    """An API client with its own session, credentials from ``env`` (default ``os.environ``).

    Every secret the credentials hold is registered for redaction before any request. Raises
    :class:`~downloader.errors.UsageError` when neither a region nor an endpoint is given, or
    no project id can be found; credential problems raise what the auth module raises.
    """
    # Imported here so that commands which never reach the API (``--help``, ``verify``) do
    # not pay for aiohttp at start-up.
    import aiohttp

    from downloader.api.auth import IamPasswordAuth
    from downloader.api.budget import ApiBudget
    from downloader.api.client import RdsClient, RetryPolicy
    from downloader.api.credentials import load_auth
    from downloader.api.regions import normalise_region, rds_endpoints, with_scheme

    env = os.environ if env is None else env
    # Region ids are lower case; IAM scopes a token by the region's name, so it gets it so too.
    region = normalise_region(settings.region) if settings.region else None
    endpoint: str | tuple[str, ...] | None = (
        with_scheme(settings.endpoint) if settings.endpoint else None
    )
    if not endpoint:
        if not region:
            raise UsageError("give --region (or --endpoint) to reach the RDS API")
        endpoint = rds_endpoints(region, env)  # the client moves on when one is down
    ssl_ctx = settings.ssl_context()
    auth = load_auth(
        env,
        iam_endpoint=settings.iam_endpoint,
        project_id=settings.project_id,
        region=region,
        ssl=ssl_ctx,
    )
    for secret in auth.secrets():
        register_secret(secret)
    project = settings.project_id or env.get("HUAWEICLOUD_SDK_PROJECT_ID") or auth.project_id
    async with aiohttp.ClientSession() as session:
        if not project and isinstance(auth, IamPasswordAuth):
            await auth.token(session)  # a token scoped by region name names its project
            project = auth.project_id
            for secret in auth.secrets():
                register_secret(secret)
        if not project:
            raise UsageError(
                "a project id is required (--project-id or HUAWEICLOUD_SDK_PROJECT_ID)"
            )
        yield RdsClient(
            endpoint=endpoint,
            project_id=project,
            auth=auth,
            session=session,
            budget=ApiBudget(settings.api_rate),
            retry=RetryPolicy(total_timeout=settings.api_timeout),
            ssl=ssl_ctx,
        )
