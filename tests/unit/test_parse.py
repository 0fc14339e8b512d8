"""JSON answers -> value objects; every malformed answer names its field."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downloader.api.parse import (
    load_links_file,
    parse_backup_files,
    parse_backups,
    parse_error,
    parse_time,
)
from downloader.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    ApiThrottledError,
    ApiUnavailableError,
    ResponseFormatError,
    UsageError,
)
from downloader.models import Backup, FileListing

CST = timezone(timedelta(hours=8))


def answer(**file_overrides: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "name": "43e4feaab48f11e89039fa163ebaa7e4br01.qp",
        "size": 2803,
        "download_link": "https://obs.example.com/rdsbucket.user.1/key?AccessKeyId=A&Signature=x%2B",
        "link_expired_time": "2018-08-16T10:15:14+0800",
        "database_name": "",
    }
    f.update(file_overrides)
    return {"files": [f], "bucket": "rdsbucket.bucketname"}


def test_good_answer() -> None:
    date = datetime(2018, 8, 16, 2, 0, tzinfo=UTC)
    listing = parse_backup_files(answer(extra_field=1), server_date=date)
    assert listing.bucket == "rdsbucket.bucketname"
    assert listing.server_date == date
    assert listing.warnings == ()
    (f,) = listing.files
    assert f.name == "43e4feaab48f11e89039fa163ebaa7e4br01.qp"
    assert f.size_kb == 2803
    assert f.download_link.endswith("Signature=x%2B")  # byte-for-byte, never re-encoded
    assert f.link_expired_time == datetime(2018, 8, 16, 10, 15, 14, tzinfo=CST)
    assert f.database_name is None


def test_database_name_kept() -> None:
    listing = parse_backup_files(answer(database_name="sales"))
    assert listing.files[0].database_name == "sales"


def test_empty_files_is_an_empty_listing() -> None:
    listing = parse_backup_files({"files": [], "bucket": "b"})
    assert listing.files == ()


def test_missing_bucket_is_tolerated() -> None:
    obj = answer()
    del obj["bucket"]
    assert parse_backup_files(obj).bucket == ""


def test_docs_typo_expiry_is_a_warning_not_a_crash() -> None:
    listing = parse_backup_files(answer(link_expired_time="2018-08-016T10:15:14+0800"))
    assert listing.files[0].link_expired_time is None
    (warning,) = listing.warnings
    assert "43e4feaab48f11e89039fa163ebaa7e4br01.qp" in warning
    assert "link_expired_time" in warning


def test_missing_expiry_is_a_warning() -> None:
    obj = answer()
    del obj["files"][0]["link_expired_time"]
    listing = parse_backup_files(obj)
    assert listing.files[0].link_expired_time is None
    assert len(listing.warnings) == 1


BAD_FILES: list[tuple[Any, str]] = [
    ([], "response"),
    ("files", "response"),
    (None, "response"),
    ({}, "files"),
    ({"files": None}, "files"),
    ({"files": {"name": "x"}}, "files"),
    ({"files": ["x"]}, "files[0]"),
    (answer(name=None), "files[0].name"),
    (answer(name=""), "files[0].name"),
    (answer(name=5), "files[0].name"),
    (answer(size="2803"), "files[0].size"),
    (answer(size=-1), "files[0].size"),
    (answer(size=1.5), "files[0].size"),
    (answer(size=True), "files[0].size"),
    (answer(size=None), "files[0].size"),
    (answer(download_link=None), "files[0].download_link"),
    (answer(download_link="ftp://host/x"), "files[0].download_link"),
    (answer(download_link="/relative/path"), "files[0].download_link"),
    (answer(download_link="https://"), "files[0].download_link"),
    (answer(download_link="http://[::1"), "files[0].download_link"),
    (answer(link_expired_time=1534385714), "files[0].link_expired_time"),
    (answer(database_name=["db"]), "files[0].database_name"),
    ({"files": [], "bucket": 7}, "bucket"),
]


@pytest.mark.parametrize(("obj", "field"), BAD_FILES)
def test_bad_backup_files_name_the_field(obj: Any, field: str) -> None:
    with pytest.raises(ResponseFormatError) as info:
        parse_backup_files(obj)
    assert info.value.field == field
    assert field in str(info.value)


def test_missing_size_names_index() -> None:
    obj = answer()
    good = dict(obj["files"][0])
    third = dict(good, name="c")
    del third["size"]
    obj["files"] = [good, dict(good, name="b"), third]
    with pytest.raises(ResponseFormatError) as info:
        parse_backup_files(obj)
    assert info.value.field == "files[2].size"
    assert info.value.problem == "missing"


def test_duplicate_name() -> None:
    obj = answer()
    obj["files"].append(dict(obj["files"][0]))
    with pytest.raises(ResponseFormatError) as info:
        parse_backup_files(obj)
    assert info.value.field == "files[1].name"
    assert "files[0]" in info.value.problem


def test_bad_link_is_not_echoed() -> None:
    secret_link = "ftp://host/key?Signature=SECRETSIG"
    with pytest.raises(ResponseFormatError) as info:
        parse_backup_files(answer(download_link=secret_link))
    assert "SECRETSIG" not in str(info.value)


# ------------------------------------------------------------------------------ expiry


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-08-16T10:15:14+0800", datetime(2018, 8, 16, 10, 15, 14, tzinfo=CST)),
        ("2018-08-16T10:15:14+08:00", datetime(2018, 8, 16, 10, 15, 14, tzinfo=CST)),
        ("2018-08-16T02:15:14Z", datetime(2018, 8, 16, 2, 15, 14, tzinfo=UTC)),
        ("2020-01-04T09:05:22.701000Z", datetime(2020, 1, 4, 9, 5, 22, 701000, tzinfo=UTC)),
        ("2020-01-04T09:05:22.7Z", datetime(2020, 1, 4, 9, 5, 22, 700000, tzinfo=UTC)),
        ("2020-01-04T09:05:22.123456789Z", datetime(2020, 1, 4, 9, 5, 22, 123456, tzinfo=UTC)),
        ("2018-08-16T10:15:14.5+0800", datetime(2018, 8, 16, 10, 15, 14, 500000, tzinfo=CST)),
        ("2018-08-16T10:15:14-0330", datetime(2018, 8, 16, 13, 45, 14, tzinfo=UTC)),
        (" 2018-08-16T10:15:14+0800 ", datetime(2018, 8, 16, 10, 15, 14, tzinfo=CST)),
        ("2018-08-16t02:15:14z", datetime(2018, 8, 16, 2, 15, 14, tzinfo=UTC)),
        ("2018-08-16 10:15:14 +0800", datetime(2018, 8, 16, 10, 15, 14, tzinfo=CST)),
    ],
)
def test_expiry_shapes(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    [
        "2018-08-016T10:15:14+0800",  # the vendor doc's own example
        "2018-08-16T10:15:14",  # no offset: refusing beats guessing the zone
        "2018-02-30T10:15:14+0800",
        "2018-08-16T25:15:14+0800",
        "2018-08-16T10:15:14+2500",
        "2018-08-16",
        "",
        "yesterday",
        "2018-08-16T10:15:14+0800trailing",
        "٢٠١٨-08-16T10:15:14+0800",  # non-ASCII digits
        # ISO 8601 shapes fromisoformat reads but the API never sends:
        "20180816T101514+0800",
        "2018-08-16T10:15+0800",
        "2018-W33-4T10:15:14+0800",
        "2018-08-16T10:15:14+08:00:30",
    ],
)
def test_unparsable_expiry_is_none(text: str) -> None:
    assert parse_time(text) is None


@given(st.text())
def test_expiry_never_raises(text: str) -> None:
    result = parse_time(text)
    assert result is None or (isinstance(result, datetime) and result.tzinfo is not None)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(9999, 1, 1),
        timezones=st.sampled_from([UTC, CST, timezone(timedelta(hours=-5, minutes=-30))]),
    )
)
def test_expiry_round_trips(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert parse_time(moment.strftime("%Y-%m-%dT%H:%M:%S%z")) == moment
    assert parse_time(moment.isoformat()) == moment


def test_a_whole_size_written_as_a_float_is_that_size() -> None:
    # JSON has one number type: an encoder that emits doubles writes 69 as 69.0.
    text = json.dumps(answer()).replace('"size": 2803', '"size": 69.0')
    (f,) = parse_backup_files(json.loads(text)).files
    assert f.size_kb == 69 and isinstance(f.size_kb, int)
    backups, _ = parse_backups({"backups": [backup_item(size=69.0)], "total_count": 1})
    assert backups[0].size_kb == 69 and isinstance(backups[0].size_kb, int)
    for bad in (69.5, float("inf"), -1.0):
        with pytest.raises(ResponseFormatError):
            parse_backup_files(answer(size=bad))


# ------------------------------------------------------------------------------ backups


def backup_item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": "43e4feaab48f11e89039fa163ebaa7e4br01",
        "name": "xxxx.xxx",
        "type": "auto",
        "size": 2803,
        "status": "COMPLETED",
        "begin_time": "2018-08-06T12:41:14+0800",
        "end_time": "2018-08-06T12:43:14+0800",
        "datastore": {"type": "MySQL", "version": "5.6"},
        "instance_id": "a48e43ff268f4c0e879652d65e63d0fbin01",
    }
    item.update(overrides)
    return item


def test_backups_good() -> None:
    backups, total = parse_backups(
        {
            "backups": [
                backup_item(),
                backup_item(id="b2", databases=[{"name": "db1"}, {"name": "db2"}], extra=1),
            ],
            "total_count": 7,
        }
    )
    assert total == 7
    first, second = backups
    assert first == Backup(
        id="43e4feaab48f11e89039fa163ebaa7e4br01",
        name="xxxx.xxx",
        instance_id="a48e43ff268f4c0e879652d65e63d0fbin01",
        type="auto",
        size_kb=2803,
        status="COMPLETED",
        begin_time=datetime(2018, 8, 6, 12, 41, 14, tzinfo=CST),
        end_time=datetime(2018, 8, 6, 12, 43, 14, tzinfo=CST),
        engine="MySQL",
        engine_version="5.6",
    )
    assert second.databases == ("db1", "db2")


def test_backups_lenient_on_optional() -> None:
    item = backup_item(end_time=None, size=None, begin_time="garbage")
    del item["datastore"], item["name"]
    backups, total = parse_backups({"backups": [item]})
    assert total == 1  # no total_count: the page is all there is
    assert backups[0].end_time is None and backups[0].begin_time is None
    assert backups[0].size_kb == 0 and backups[0].engine is None


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], "response"),
        ({}, "backups"),
        ({"backups": {}}, "backups"),
        ({"backups": [1]}, "backups[0]"),
        ({"backups": [backup_item(id=None)]}, "backups[0].id"),
        ({"backups": [backup_item(type=1)]}, "backups[0].type"),
        ({"backups": [backup_item(status=None)]}, "backups[0].status"),
        ({"backups": [backup_item(size=-3)]}, "backups[0].size"),
        ({"backups": [backup_item(end_time=5)]}, "backups[0].end_time"),
        ({"backups": [backup_item(datastore="MySQL")]}, "backups[0].datastore"),
        ({"backups": [backup_item(databases=[{}])]}, "backups[0].databases[0].name"),
        ({"backups": [], "total_count": "3"}, "total_count"),
        ({"backups": [], "total_count": True}, "total_count"),
    ],
)
def test_bad_backups_name_the_field(obj: Any, field: str) -> None:
    with pytest.raises(ResponseFormatError) as info:
        parse_backups(obj)
    assert info.value.field == field


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            401,
            {"error_code": "APIG.0301", "error_msg": "verify aksk signature fail"},
            ApiAuthError,
            "APIG.0301",
        ),
        (
            403,
            {"errorCode": "DBS.200010", "errorMsg": "not authorized"},
            ApiAuthError,
            "DBS.200010",
        ),
        (
            404,
            {"itemNotFound": {"code": 404, "message": "no such backup"}},
            ApiNotFoundError,
            "404",
        ),
        (
            400,
            {"error_code": "DBS.280214", "error_msg": "backup does not exist"},
            ApiNotFoundError,
            "DBS.280214",
        ),
        (429, {"code": "x", "message": "slow down"}, ApiThrottledError, "x"),
        (
            400,
            {"error_code": "APIG.0308", "error_msg": "The throttling threshold"},
            ApiThrottledError,
            "APIG.0308",
        ),
        (503, {"errCode": "E1", "externalMessage": "maintenance"}, ApiUnavailableError, "E1"),
        (
            409,
            {"error_code": "DBS.201205", "error_msg": "Backup is in progress"},
            ApiError,
            "DBS.201205",
        ),
    ],
)
def test_parse_error_classes(status: int, body: Any, cls: type, code: str) -> None:
    err = parse_error(status, json.dumps(body).encode(), {"x-request-id": "req-123"})
    assert type(err) is cls
    assert err.status == status
    assert err.error_code == code
    assert err.request_id == "req-123"
    assert "req-123" in str(err)


def test_parse_error_messages() -> None:
    err = parse_error(401, b"{}", {})
    assert str(err).startswith("credentials refused")
    err = parse_error(404, b"", {})
    assert "unknown backup, project or endpoint" in str(err)


def test_parse_error_non_json_is_one_truncated_line() -> None:
    body = b"<html>\n<body>\n" + b"Bad Gateway " * 200 + b"</body></html>"
    err = parse_error(502, body, {"X-Request-Id": "r"})
    assert isinstance(err, ApiUnavailableError)
    assert "\n" not in str(err)
    assert len(str(err)) < 450


def test_parse_error_redacts_secrets() -> None:
    body = json.dumps(
        {
            "error_code": "APIG.0301",
            "error_msg": "Get secretKey failed,ak:AKSECRET1,err:ak not exist",
        }
    ).encode()
    err = parse_error(401, body, {}, secrets=["AKSECRET1"])
    assert "AKSECRET1" not in str(err)
    assert "***" in str(err)


@given(
    status=st.integers(400, 599),
    body=st.binary(max_size=200),
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4),
)
def test_parse_error_never_raises(status: int, body: bytes, headers: dict[str, str]) -> None:
    err = parse_error(status, body, headers)
    assert isinstance(err, ApiError)
    assert "\n" not in str(err)


# ---------------------------------------------------------------------- arbitrary JSON

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
maybe = json_values | st.text() | st.integers(-5, 10**12)
file_like = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe,
        "size": maybe,
        "download_link": maybe | st.sampled_from(["https://h/x", "http://h:1/a?b=c", "ftp://x"]),
        "link_expired_time": maybe | st.sampled_from(["2018-08-16T10:15:14+0800"]),
        "database_name": maybe,
    },
)
answer_like = st.fixed_dictionaries(
    {}, optional={"files": st.lists(file_like, max_size=4) | json_values, "bucket": maybe}
)


@settings(max_examples=300)
@given(obj=json_values | answer_like)
def test_backup_files_only_typed_or_format_error(obj: Any) -> None:
    try:
        listing = parse_backup_files(obj)
    except ResponseFormatError as exc:
        assert exc.field
        return
    assert isinstance(listing, FileListing)
    for f in listing.files:
        assert isinstance(f.name, str) and f.name
        assert isinstance(f.size_kb, int) and not isinstance(f.size_kb, bool)
        assert f.size_kb >= 0
        assert urlsplit(f.download_link).scheme.lower() in ("http", "https")
        assert f.link_expired_time is None or f.link_expired_time.tzinfo is not None
    assert len({f.name for f in listing.files}) == len(listing.files)


backup_like = st.fixed_dictionaries(
    {},
    optional={
        k: maybe
        for k in (
            "id",
            "name",
            "instance_id",
            "type",
            "size",
            "status",
            "begin_time",
            "end_time",
            "datastore",
            "databases",
        )
    },
)


@settings(max_examples=300)
@given(
    obj=json_values
    | st.fixed_dictionaries(
        {},
        optional={"backups": st.lists(backup_like, max_size=3) | json_values, "total_count": maybe},
    )
)
def test_backups_only_typed_or_format_error(obj: Any) -> None:
    try:
        backups, total = parse_backups(obj)
    except ResponseFormatError:
        return
    assert isinstance(total, int) and total >= 0
    assert all(isinstance(b, Backup) for b in backups)


# --------------------------------------------------------------------------- links file


def test_links_file(tmp_path: Path) -> None:
    path = tmp_path / "links.json"
    path.write_text(json.dumps(answer()))
    listing = load_links_file(path)
    assert listing.files[0].size_kb == 2803
    assert load_links_file(str(path)).files == listing.files


def test_links_file_stdin() -> None:
    listing = load_links_file("-", stdin=io.StringIO(json.dumps(answer())))
    assert len(listing.files) == 1


def test_links_file_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "links.json"
    path.write_text('{"files": [')
    with pytest.raises(UsageError) as info:
        load_links_file(path)
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_links_file_bad_shape(tmp_path: Path) -> None:
    path = tmp_path / "links.json"
    path.write_text(json.dumps(answer(size=-4)))
    with pytest.raises(UsageError) as info:
        load_links_file(path)
    assert "files[0].size" in str(info.value) and str(path) in str(info.value)


def test_links_file_missing(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_links_file(tmp_path / "nope.json")
    assert "nope.json" in str(info.value)


def test_links_file_deeply_nested(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    with pytest.raises(UsageError):
        load_links_file(path)
