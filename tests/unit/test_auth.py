"""Credential sources, their order, the profile file's permissions, secrets kept out of text."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from downloader.api.auth import AkSkAuth, Auth, IamPasswordAuth, TokenAuth
from downloader.api.credentials import load_auth
from downloader.api.signer import parse_authorization
from downloader.errors import CredentialsError

AK = "AKENVEXAMPLE00000001"
SK = "SKenvSecretValue0000000000000000000000001"
PROFILE_AK = "AKPROFILE00000000002"
PROFILE_SK = "SKprofileSecretValue00000000000000000002"
TOKEN = "MIItokenSECRETvalue"
PASSWORD = "pässwörd secret"


def write_profile(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / ".huaweicloud" / "credentials"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


PROFILE = f"""[basic]
ak = {PROFILE_AK}
sk = {PROFILE_SK}
project_id = profileproject
"""

IAM_ENV = {
    "RDS_BACKUP_IAM_USER": "alice",
    "RDS_BACKUP_IAM_PASSWORD": PASSWORD,
    "RDS_BACKUP_IAM_DOMAIN": "acme",
}


def all_text(auth: object) -> str:
    return repr(auth) + str(auth)


def test_env_ak_sk_first(tmp_path: Path) -> None:
    write_profile(tmp_path, PROFILE)
    env = {
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "HUAWEICLOUD_SDK_PROJECT_ID": "envproject",
        "RDS_BACKUP_AUTH_TOKEN": TOKEN,
        **IAM_ENV,
    }
    auth = load_auth(env, home=tmp_path)
    assert isinstance(auth, AkSkAuth)
    assert isinstance(auth, Auth)
    assert auth.project_id == "envproject"
    assert auth.source == "environment"
    assert not auth.temporary
    assert set(auth.secrets()) == {AK, SK}
    assert AK not in all_text(auth) and SK not in all_text(auth)


def test_explicit_project_wins(tmp_path: Path) -> None:
    env = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_PROJECT_ID": "e"}
    assert load_auth(env, home=tmp_path, project_id="cli").project_id == "cli"


def test_env_security_token(tmp_path: Path) -> None:
    env = {
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": TOKEN,
    }
    auth = load_auth(env, home=tmp_path)
    assert isinstance(auth, AkSkAuth) and auth.temporary
    assert TOKEN in auth.secrets()
    assert TOKEN not in all_text(auth)


@pytest.mark.parametrize("present", ["HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"])
def test_half_a_key_pair_is_an_error(tmp_path: Path, present: str) -> None:
    with pytest.raises(CredentialsError) as info:
        load_auth({present: "x"}, home=tmp_path)
    assert "HUAWEICLOUD_SDK_AK" in str(info.value) and "HUAWEICLOUD_SDK_SK" in str(info.value)


def test_profile_second(tmp_path: Path) -> None:
    path = write_profile(tmp_path, PROFILE + "security_token = TEMPTOK\n")
    auth = load_auth({"RDS_BACKUP_AUTH_TOKEN": TOKEN}, home=tmp_path)
    assert isinstance(auth, AkSkAuth)
    assert auth.project_id == "profileproject"
    assert auth.temporary
    assert str(path) in auth.source
    assert set(auth.secrets()) == {PROFILE_AK, PROFILE_SK, "TEMPTOK"}


def test_env_project_beats_profile_project(tmp_path: Path) -> None:
    write_profile(tmp_path, PROFILE)
    auth = load_auth({"HUAWEICLOUD_SDK_PROJECT_ID": "envp"}, home=tmp_path)
    assert auth.project_id == "envp"


def test_profile_from_env_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.ini"
    path.write_text(PROFILE)
    path.chmod(0o400)
    auth = load_auth({"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path)}, home=tmp_path / "nohome")
    assert isinstance(auth, AkSkAuth) and auth.project_id == "profileproject"


def test_profile_from_env_path_missing_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ini"
    with pytest.raises(CredentialsError) as info:
        load_auth({"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(missing)}, home=tmp_path)
    assert str(missing) in str(info.value)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_profile_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_profile(tmp_path, PROFILE, mode)
    with pytest.raises(CredentialsError) as info:
        load_auth({}, home=tmp_path)
    text = str(info.value)
    assert str(path) in text
    assert "chmod 600" in text
    assert PROFILE_SK not in text and PROFILE_AK not in text


def test_profile_without_sk(tmp_path: Path) -> None:
    path = write_profile(tmp_path, f"[basic]\nak = {PROFILE_AK}\n")
    with pytest.raises(CredentialsError) as info:
        load_auth({}, home=tmp_path)
    assert str(path) in str(info.value) and "sk" in str(info.value)
    assert PROFILE_AK not in str(info.value)


def test_unparsable_profile_does_not_quote_contents(tmp_path: Path) -> None:
    path = write_profile(tmp_path, f"ak = {PROFILE_AK}\nsk={PROFILE_SK}\n")  # no section header
    with pytest.raises(CredentialsError) as info:
        load_auth({}, home=tmp_path)
    assert str(path) in str(info.value)
    assert PROFILE_SK not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_profile_without_basic_section_is_skipped(tmp_path: Path) -> None:
    write_profile(tmp_path, f"[global]\nak = {PROFILE_AK}\nsk = {PROFILE_SK}\n")
    auth = load_auth({"RDS_BACKUP_AUTH_TOKEN": TOKEN}, home=tmp_path)
    assert isinstance(auth, TokenAuth)


def test_token_third(tmp_path: Path) -> None:
    auth = load_auth({"RDS_BACKUP_AUTH_TOKEN": TOKEN, **IAM_ENV}, home=tmp_path)
    assert isinstance(auth, TokenAuth)
    assert auth.secrets() == [TOKEN]
    assert TOKEN not in all_text(auth)


def test_iam_password_fourth(tmp_path: Path) -> None:
    auth = load_auth(IAM_ENV, home=tmp_path, region="ap-southeast-1")
    assert isinstance(auth, IamPasswordAuth)
    assert auth.iam_endpoint == "https://iam.ap-southeast-1.myhuaweicloud.com"
    assert auth.project_id is None and auth.region == "ap-southeast-1"
    assert PASSWORD in auth.secrets()
    assert PASSWORD not in all_text(auth)


def test_iam_endpoint_precedence(tmp_path: Path) -> None:
    env = {**IAM_ENV, "HUAWEICLOUD_SDK_IAM_ENDPOINT": "https://iam.env.example"}
    auth = load_auth(env, home=tmp_path, region="eu-west-101")
    assert isinstance(auth, IamPasswordAuth)
    assert auth.iam_endpoint == "https://iam.env.example"
    auth = load_auth(env, home=tmp_path, region="eu-west-101", iam_endpoint="https://cli.example")
    assert isinstance(auth, IamPasswordAuth)
    assert auth.iam_endpoint == "https://cli.example"
    auth = load_auth(IAM_ENV, home=tmp_path, region="eu-west-101")
    assert isinstance(auth, IamPasswordAuth)
    assert auth.iam_endpoint == "https://iam.eu-west-101.myhuaweicloud.eu"


def test_iam_password_incomplete(tmp_path: Path) -> None:
    env = dict(IAM_ENV)
    del env["RDS_BACKUP_IAM_DOMAIN"]
    with pytest.raises(CredentialsError) as info:
        load_auth(env, home=tmp_path, region="ap-southeast-1")
    assert "RDS_BACKUP_IAM_DOMAIN" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_iam_password_needs_region_or_endpoint(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError):
        load_auth(IAM_ENV, home=tmp_path)


def test_nothing_lists_every_option(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as info:
        load_auth({}, home=tmp_path)
    text = str(info.value)
    for name in (
        "HUAWEICLOUD_SDK_AK",
        "HUAWEICLOUD_SDK_SK",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
        "RDS_BACKUP_AUTH_TOKEN",
        "RDS_BACKUP_IAM_USER",
        "RDS_BACKUP_IAM_PASSWORD",
        "RDS_BACKUP_IAM_DOMAIN",
    ):
        assert name in text


async def test_ak_sk_headers_sign_project_and_token() -> None:
    auth = AkSkAuth(AK, SK, security_token=TOKEN, project_id="p1")
    out = await auth.headers(
        method="GET",
        host="rds.example:8443",
        path="/v3/p1/backups",
        query=[("instance_id", "i")],
        headers={"Content-Type": "application/json"},
        body=b"",
        session=None,  # type: ignore[arg-type]  # AK/SK signing does no I/O
    )
    assert out["X-Project-Id"] == "p1"
    assert out["X-Security-Token"] == TOKEN
    assert out["Host"] == "rds.example:8443"
    parsed = parse_authorization(out["Authorization"])
    assert parsed is not None
    assert parsed[0] == AK
    assert parsed[1] == ["content-type", "host", "x-project-id", "x-sdk-date", "x-security-token"]


async def test_token_headers() -> None:
    out = await TokenAuth(TOKEN).headers(
        method="GET",
        host="h",
        path="/",
        query=[],
        headers={"Content-Type": "application/json"},
        body=b"",
        session=None,  # type: ignore[arg-type]
    )
    assert out == {"Content-Type": "application/json", "X-Auth-Token": TOKEN}


async def test_only_ak_sk_signing_takes_a_clock_correction() -> None:
    signed_at = datetime(2026, 11, 26, 5, 40, 0, tzinfo=UTC)
    auth = AkSkAuth(AK, SK, now=lambda: signed_at)
    assert auth.clock_offset == 0.0
    assert auth.correct_clock(3600.0)
    assert auth.clock_offset == 3600.0
    assert not auth.correct_clock(3700.0)  # within 5 minutes of the time in use: not the cause
    out = await auth.headers(
        method="GET",
        host="h",
        path="/",
        query=[],
        headers={"Content-Type": "application/json", "Host": "h"},
        body=b"",
        session=None,  # type: ignore[arg-type]  # AK/SK signing does no I/O
    )
    assert out["X-Sdk-Date"] == "20261126T064000Z"  # an hour on, as the server's clock says

    assert not TokenAuth(TOKEN).correct_clock(3600.0)
    iam = IamPasswordAuth(
        user="u", password=PASSWORD, domain="d", iam_endpoint="https://iam.example", region="r"
    )
    assert not iam.correct_clock(3600.0)  # a token's lifetime is read on IAM's clock already
