"""Region id -> RDS and IAM endpoints, resolved the way huaweicloudsdkcore/huaweicloudsdkrds do.

RDS: env ``HUAWEICLOUD_SDK_REGION_RDS_<REGION>`` (a comma-separated list, tried in order by
the client when one cannot be reached, as the SDK does), else the
static table of huaweicloudsdkrds 3.1.219 (``v3/region/rds_region.py``). IAM: env
``HUAWEICLOUD_SDK_IAM_ENDPOINT``, else the regional ``iam.{region}`` host. EU (eu-west-101)
lives under ``.myhuaweicloud.eu`` for both.
"""

from __future__ import annotations

from collections.abc import Mapping

from downloader.errors import UsageError

RDS_ENV_PREFIX = "HUAWEICLOUD_SDK_REGION_RDS_"
IAM_ENDPOINT_ENV = "HUAWEICLOUD_SDK_IAM_ENDPOINT"

# huaweicloudsdkrds 3.1.219 RdsRegion static table (all but eu-west-101 on .com).
RDS_REGIONS: frozenset[str] = frozenset(
    {
        "af-south-1",
        "af-north-1",
        "cn-north-1",
        "cn-north-2",
        "cn-north-4",
        "cn-north-9",
        "cn-north-11",
        "cn-north-12",
        "cn-east-2",
        "cn-east-3",
        "cn-east-4",
        "cn-east-5",
        "cn-south-1",
        "cn-south-2",
        "cn-south-4",
        "cn-southwest-2",
        "cn-southwest-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ru-northwest-2",
        "ru-moscow-1",
        "sa-brazil-1",
        "la-north-2",
        "la-south-2",
        "na-mexico-1",
        "tr-west-1",
        "ae-ad-1",
        "eu-west-0",
        "my-kualalumpur-1",
        "me-east-1",
        "eu-west-101",
    }
)

_EU_REGIONS = frozenset({"eu-west-101"})


def _domain(region: str) -> str:
    return "myhuaweicloud.eu" if region in _EU_REGIONS else "myhuaweicloud.com"


def rds_env_name(region: str) -> str:
    """The override variable the SDK reads for ``region`` (``-`` -> ``_``, upper case)."""
    return RDS_ENV_PREFIX + region.replace("-", "_").upper()


def _endpoint_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip().rstrip("/") for item in value.split(",") if item.strip())


def _first_endpoint(value: str) -> str | None:
    listed = _endpoint_list(value)
    return listed[0] if listed else None


def rds_endpoint(region: str, env: Mapping[str, str]) -> str:
    """The RDS API base URL (``https://host``, no trailing slash) for ``region``."""
    return rds_endpoints(region, env)[0]


def rds_endpoints(region: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """Every RDS API base URL for ``region``, in the order to try them (at least one)."""
    region = region.strip()
    override = env.get(rds_env_name(region), "") if region else ""
    listed = _endpoint_list(override)
    if listed:
        return listed
    if region in RDS_REGIONS:
        return (f"https://rds.{region}.{_domain(region)}",)
    raise UsageError(
        f"unknown region {region!r} for RDS; set {rds_env_name(region or 'REGION')}="
        f"https://rds.<region>.myhuaweicloud.com (or pass --endpoint)"
    )


def iam_endpoint(region: str, env: Mapping[str, str]) -> str:
    """The IAM base URL: ``HUAWEICLOUD_SDK_IAM_ENDPOINT`` or the regional IAM host."""
    endpoint = _first_endpoint(env.get(IAM_ENDPOINT_ENV, ""))
    if endpoint is not None:
        return endpoint
    region = region.strip()
    if region in RDS_REGIONS:
        return f"https://iam.{region}.{_domain(region)}"
    raise UsageError(
        f"unknown region {region!r} for IAM; set {IAM_ENDPOINT_ENV}=https://iam.<region>."
        "myhuaweicloud.com"
    )
