"""Region id -> endpoints, as the official SDK resolves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from downloader.api.regions import (
    RDS_REGIONS,
    REGION_CITIES,
    iam_endpoint,
    normalise_region,
    rds_endpoint,
    rds_endpoints,
    rds_env_name,
    suggest_regions,
    with_scheme,
)
from downloader.errors import UsageError


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("ap-southeast-1", "https://rds.ap-southeast-1.myhuaweicloud.com"),
        ("cn-north-4", "https://rds.cn-north-4.myhuaweicloud.com"),
        ("eu-west-0", "https://rds.eu-west-0.myhuaweicloud.com"),
        ("eu-west-101", "https://rds.eu-west-101.myhuaweicloud.eu"),
        ("my-kualalumpur-1", "https://rds.my-kualalumpur-1.myhuaweicloud.com"),
    ],
)
def test_rds_static(region: str, expected: str) -> None:
    assert rds_endpoint(region, {}) == expected


def test_rds_table_size() -> None:
    assert len(RDS_REGIONS) == 34


def test_rds_env_override_first_of_list() -> None:
    env = {"HUAWEICLOUD_SDK_REGION_RDS_AP_SOUTHEAST_1": " https://a.example/ ,https://b.example"}
    assert rds_endpoint("ap-southeast-1", env) == "https://a.example"


def test_rds_env_override_for_unknown_region() -> None:
    assert rds_env_name("xx-new-9") == "HUAWEICLOUD_SDK_REGION_RDS_XX_NEW_9"
    env = {"HUAWEICLOUD_SDK_REGION_RDS_XX_NEW_9": "https://rds.xx-new-9.example.com"}
    assert rds_endpoint("xx-new-9", env) == "https://rds.xx-new-9.example.com"


def test_rds_empty_override_is_ignored() -> None:
    env = {"HUAWEICLOUD_SDK_REGION_RDS_CN_NORTH_4": " , "}
    assert rds_endpoint("cn-north-4", env) == "https://rds.cn-north-4.myhuaweicloud.com"


def test_rds_unknown_region_says_how_to_override() -> None:
    with pytest.raises(UsageError) as info:
        rds_endpoint("mars-1", {})
    assert "mars-1" in str(info.value)
    assert "HUAWEICLOUD_SDK_REGION_RDS_MARS_1" in str(info.value)


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("ap-southeast-1", "https://iam.ap-southeast-1.myhuaweicloud.com"),
        ("eu-west-101", "https://iam.eu-west-101.myhuaweicloud.eu"),
    ],
)
def test_iam_regional(region: str, expected: str) -> None:
    assert iam_endpoint(region, {}) == expected


def test_iam_env_override() -> None:
    env = {"HUAWEICLOUD_SDK_IAM_ENDPOINT": "https://iam.example/"}
    assert iam_endpoint("ap-southeast-1", env) == "https://iam.example"
    assert iam_endpoint("unknown-region", env) == "https://iam.example"


def test_iam_unknown_region() -> None:
    with pytest.raises(UsageError) as info:
        iam_endpoint("mars-1", {})
    assert "HUAWEICLOUD_SDK_IAM_ENDPOINT" in str(info.value)


def test_rds_env_override_keeps_every_endpoint_in_order() -> None:
    env = {"HUAWEICLOUD_SDK_REGION_RDS_AP_SOUTHEAST_1": " https://a.example/ ,, https://b.example"}
    assert rds_endpoints("ap-southeast-1", env) == ("https://a.example", "https://b.example")
    assert rds_endpoints("ap-southeast-1", {}) == ("https://rds.ap-southeast-1.myhuaweicloud.com",)


@pytest.mark.parametrize("region", ["AP-SOUTHEAST-1", " Ap-Southeast-1 "])
def test_region_ids_are_not_case_sensitive(region: str) -> None:
    assert rds_endpoint(region, {}) == "https://rds.ap-southeast-1.myhuaweicloud.com"
    assert iam_endpoint(region, {}) == "https://iam.ap-southeast-1.myhuaweicloud.com"
    assert normalise_region(region) == "ap-southeast-1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("singapore", ["ap-southeast-3"]),
        ("Singapur", ["ap-southeast-3"]),
        ("AP-Singapore", ["ap-southeast-3"]),
        ("Hong Kong", ["ap-southeast-1"]),
        ("São Paulo", ["sa-brazil-1"]),
        ("moscow", ["ru-moscow-1", "ru-northwest-2"]),
        ("ap_southeast_1", ["ap-southeast-1"]),
        ("kualalumpur", ["my-kualalumpur-1"]),
        ("mars-1", []),
        ("", []),
    ],
)
def test_suggestions_match_ids_and_city_names(text: str, expected: list[str]) -> None:
    assert suggest_regions(text) == expected


def test_every_city_belongs_to_a_known_region() -> None:
    assert set(REGION_CITIES) <= RDS_REGIONS


def test_a_city_is_answered_with_its_region_and_the_known_ids() -> None:
    with pytest.raises(UsageError) as info:
        rds_endpoint("singapore", {})
    message = str(info.value)
    assert "did you mean ap-southeast-3 (Singapore)?" in message
    assert "cn-north-4" in message and "eu-west-101" in message  # the known ids
    # The override is named after a region id, not after the city typed.
    assert "HUAWEICLOUD_SDK_REGION_RDS_SINGAPORE" not in message
    assert "HUAWEICLOUD_SDK_REGION_RDS_<REGION_ID>" in message
    with pytest.raises(UsageError) as info:
        iam_endpoint("singapore", {})
    assert "did you mean ap-southeast-3 (Singapore)?" in str(info.value)


# ------------------------------------------------------------------ the SDK's regions file

REGIONS_YAML = """\
rds:
  - id: ap-southeast-1
    endpoint: https://rds.private.example
  - id: xx-new-9
    endpoints:
      - rds-a.xx.example
      - https://rds-b.xx.example/
    endpoint: rds-c.xx.example
IAM:
  - id: ap-southeast-1
    endpoint: https://iam.private.example
"""


def test_the_regions_file_names_rds_endpoints_as_the_sdk_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "regions.yaml"
    path.write_text(REGIONS_YAML)
    env = {"HUAWEICLOUD_SDK_REGIONS_FILE": str(path)}
    assert rds_endpoints("ap-southeast-1", env) == ("https://rds.private.example",)
    # endpoints first, then endpoint; no scheme: https, as the SDK's client builder adds it
    assert rds_endpoints("XX-NEW-9", env) == (
        "https://rds-a.xx.example",
        "https://rds-b.xx.example",
        "https://rds-c.xx.example",
    )
    assert rds_endpoint("cn-north-4", env) == "https://rds.cn-north-4.myhuaweicloud.com"
    # The environment's override wins over the file (EnvRegionProvider comes first).
    env["HUAWEICLOUD_SDK_REGION_RDS_AP_SOUTHEAST_1"] = "https://env.example"
    assert rds_endpoints("ap-southeast-1", env) == ("https://env.example",)


def test_the_regions_file_is_found_in_home(tmp_path: Path) -> None:
    (tmp_path / ".huaweicloud").mkdir()
    (tmp_path / ".huaweicloud" / "regions.yaml").write_text(REGIONS_YAML)
    assert rds_endpoint("ap-southeast-1", {"HOME": str(tmp_path)}) == "https://rds.private.example"
    assert rds_endpoint("ap-southeast-1", {"HOME": str(tmp_path / "nobody")}) == (
        "https://rds.ap-southeast-1.myhuaweicloud.com"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rds: [\n", "not valid YAML (line 2)"),
        ("- rds\n", "not a mapping"),
        ("rds: 3\n", "not a list of regions"),
        ("rds:\n  - id: ap-southeast-1\n    endpoints: x\n", "endpoints is not a list"),
    ],
)
def test_a_broken_regions_file_is_a_usage_error_naming_it(
    tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "regions.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        rds_endpoint("ap-southeast-1", {"HUAWEICLOUD_SDK_REGIONS_FILE": str(path)})
    assert str(path) in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("rds.example.com", "https://rds.example.com"),
        ("rds.example.com:8443/", "https://rds.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("HTTPS://Rds.Example", "HTTPS://Rds.Example"),
        ("", ""),
    ],
)
def test_an_endpoint_without_a_scheme_gets_https(given: str, expected: str) -> None:
    assert with_scheme(given) == expected
    if given:
        env = {
            "HUAWEICLOUD_SDK_REGION_RDS_CN_NORTH_4": given,
            "HUAWEICLOUD_SDK_IAM_ENDPOINT": given,
        }
        assert rds_endpoint("cn-north-4", env) == expected
        assert iam_endpoint("cn-north-4", env) == expected
