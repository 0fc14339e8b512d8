"""Where credentials come from: the environment and the SDK's profile file -> an :class:`Auth`.

Order (the official SDK's env -> profile order, facts §4c, then our two token sources):

1. ``HUAWEICLOUD_SDK_AK`` + ``HUAWEICLOUD_SDK_SK`` (+ ``HUAWEICLOUD_SDK_SECURITY_TOKEN``)
2. the profile ``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` (default ``~/.huaweicloud/credentials``),
   section ``[basic]``: ``ak``, ``sk``, ``security_token``, ``project_id``, ``iam_endpoint``
3. ``RDS_BACKUP_AUTH_TOKEN``: a ready IAM token, sent as ``X-Auth-Token``
4. ``RDS_BACKUP_IAM_USER`` + ``RDS_BACKUP_IAM_PASSWORD`` + ``RDS_BACKUP_IAM_DOMAIN``: an IAM
   token fetched with ``POST /v3/auth/tokens`` (facts §4b), cached and refreshed before expiry

Nothing here touches the network; error messages name files and variables, never values.
"""

from __future__ import annotations

import configparser
import os
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from downloader.api.auth import (
    DEFAULT_REFRESH_MARGIN,
    AkSkAuth,
    Auth,
    IamPasswordAuth,
    TokenAuth,
)
from downloader.api.iam import SslArg
from downloader.api.regions import iam_endpoint as regional_iam_endpoint
from downloader.api.regions import with_scheme
from downloader.errors import CredentialsError

ENV_AK = "HUAWEICLOUD_SDK_AK"
ENV_SK = "HUAWEICLOUD_SDK_SK"
ENV_SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a variable name
ENV_PROJECT_ID = "HUAWEICLOUD_SDK_PROJECT_ID"
ENV_CREDENTIALS_FILE = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
ENV_IAM_ENDPOINT = "HUAWEICLOUD_SDK_IAM_ENDPOINT"
ENV_AUTH_TOKEN = "RDS_BACKUP_AUTH_TOKEN"  # noqa: S105 - a variable name
ENV_IAM_USER = "RDS_BACKUP_IAM_USER"
ENV_IAM_PASSWORD = "RDS_BACKUP_IAM_PASSWORD"  # noqa: S105 - a variable name
ENV_IAM_DOMAIN = "RDS_BACKUP_IAM_DOMAIN"

DEFAULT_CREDENTIALS_FILE = Path(".huaweicloud") / "credentials"


class _Profile:
    __slots__ = ("ak", "iam_endpoint", "path", "project_id", "security_token", "sk")

    def __init__(self, path: Path, section: Mapping[str, str]) -> None:
        self.path = path
        self.ak = section.get("ak", "").strip()
        self.sk = section.get("sk", "").strip()
        self.security_token = section.get("security_token", "").strip() or None
        self.project_id = section.get("project_id", "").strip() or None
        self.iam_endpoint = section.get("iam_endpoint", "").strip() or None


def _credentials_path(env: Mapping[str, str], home: Path | None) -> tuple[Path, bool]:
    explicit = env.get(ENV_CREDENTIALS_FILE, "").strip()
    if explicit:
        return Path(explicit).expanduser(), True
    base = home if home is not None else Path.home()
    return base / DEFAULT_CREDENTIALS_FILE, False


def _read_profile(path: Path, explicit: bool) -> _Profile | None:
    """The ``[basic]`` section of the SDK profile file, or None when there is none.

    Error messages name the file, never its contents (a parse error would quote a line).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        if explicit:
            raise CredentialsError(
                f"credentials file {path} (from {ENV_CREDENTIALS_FILE}) does not exist"
            ) from None
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"credentials file {path} is not a regular file")
    # As ssh with its keys: whoever owns the file chose the keys in it, so it must be the
    # running user (or root), whatever its mode.
    if os.name == "posix" and st.st_uid not in (os.geteuid(), 0):
        raise CredentialsError(
            f"credentials file {path} is owned by another user (uid {st.st_uid}); "
            "it must belong to you or root"
        )
    if os.name == "posix" and st.st_mode & 0o077:
        raise CredentialsError(
            f"credentials file {path} is readable by other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, UnicodeDecodeError, configparser.Error):
        raise CredentialsError(
            f"cannot parse credentials file {path} (expected INI with a [basic] section)"
        ) from None
    if not parser.has_section("basic"):
        if explicit:
            raise CredentialsError(f"credentials file {path} has no [basic] section")
        return None
    profile = _Profile(path, parser["basic"])
    missing = [k for k in ("ak", "sk") if not getattr(profile, k)]
    if missing:
        raise CredentialsError(f"credentials file {path}: [basic] lacks {' and '.join(missing)}")
    return profile


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def load_auth(
    env: Mapping[str, str],
    *,
    home: Path | None = None,
    iam_endpoint: str | None = None,
    project_id: str | None = None,
    region: str | None = None,
    refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    clock: Callable[[], float] = time.monotonic,
    ssl: SslArg = None,
) -> Auth:
    """Pick the first credential source that is configured (see the module docstring).

    ``project_id`` (e.g. from ``--project-id``) wins over ``HUAWEICLOUD_SDK_PROJECT_ID``, which
    wins over the profile's ``project_id``. For IAM password login, ``iam_endpoint`` wins over
    ``HUAWEICLOUD_SDK_IAM_ENDPOINT``, which wins over the regional IAM host of ``region``.
    """
    explicit_project = (project_id or "").strip() or _env(env, ENV_PROJECT_ID) or None

    ak, sk = _env(env, ENV_AK), _env(env, ENV_SK)
    if ak or sk:
        if not (ak and sk):
            have, lack = (ENV_AK, ENV_SK) if ak else (ENV_SK, ENV_AK)
            raise CredentialsError(f"{have} is set but {lack} is not; set both")
        return AkSkAuth(
            ak,
            sk,
            security_token=_env(env, ENV_SECURITY_TOKEN) or None,
            project_id=explicit_project,
            source="environment",
        )

    path, explicit_path = _credentials_path(env, home)
    profile = _read_profile(path, explicit_path)
    if profile is not None:
        return AkSkAuth(
            profile.ak,
            profile.sk,
            security_token=profile.security_token,
            project_id=explicit_project or profile.project_id,
            source=f"credentials file {path}",
        )

    token = _env(env, ENV_AUTH_TOKEN)
    if token:
        return TokenAuth(token, project_id=explicit_project, source=ENV_AUTH_TOKEN)

    user, password, domain = (
        _env(env, ENV_IAM_USER),
        env.get(ENV_IAM_PASSWORD, ""),  # a password may legitimately have edge spaces
        _env(env, ENV_IAM_DOMAIN),
    )
    if user or password or domain:
        missing = [
            name
            for name, value in (
                (ENV_IAM_USER, user),
                (ENV_IAM_PASSWORD, password),
                (ENV_IAM_DOMAIN, domain),
            )
            if not value
        ]
        if missing:
            raise CredentialsError(f"IAM password login needs {', '.join(missing)} as well")
        endpoint = with_scheme(
            (iam_endpoint or "").strip()
            or _env(env, ENV_IAM_ENDPOINT)
            or (regional_iam_endpoint(region, env) if region else "")
        )
        if not endpoint:
            raise CredentialsError(
                f"IAM password login needs a region or {ENV_IAM_ENDPOINT} to find IAM"
            )
        if not explicit_project and not region:
            raise CredentialsError("IAM password login needs a project id or a region")
        return IamPasswordAuth(
            user=user,
            password=password,
            domain=domain,
            iam_endpoint=endpoint,
            project_id=explicit_project,
            region=region,
            refresh_margin=refresh_margin,
            clock=clock,
            ssl=ssl,
            source="environment",
        )

    raise CredentialsError(
        "no credentials found; set one of: "
        f"{ENV_AK} + {ENV_SK} (optionally {ENV_SECURITY_TOKEN}); "
        f"a credentials file {path} ([basic] ak, sk; mode 0600; or {ENV_CREDENTIALS_FILE}); "
        f"{ENV_AUTH_TOKEN}; "
        f"or {ENV_IAM_USER} + {ENV_IAM_PASSWORD} + {ENV_IAM_DOMAIN}"
    )
