"""Region id -> RDS and IAM endpoints, resolved the way huaweicloudsdkcore/huaweicloudsdkrds do.

RDS: env ``HUAWEICLOUD_SDK_REGION_RDS_<REGION>`` (a comma-separated list, tried in order by
the client when one cannot be reached, as the SDK does), else the regions file
(``HUAWEICLOUD_SDK_REGIONS_FILE``, else ``~/.huaweicloud/regions.yaml``: huaweicloudsdkcore's
``ProfileRegionProvider``), else the static table of huaweicloudsdkrds 3.1.219
(``v3/region/rds_region.py``). IAM: env ``HUAWEICLOUD_SDK_IAM_ENDPOINT``, else the regional
``iam.{region}`` host. EU (eu-west-101) lives under ``.myhuaweicloud.eu`` for both. An
endpoint given without a scheme gets ``https://``, as the SDK's client builder does.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from downloader.errors import UsageError

RDS_ENV_PREFIX = "HUAWEICLOUD_SDK_REGION_RDS_"
IAM_ENDPOINT_ENV = "HUAWEICLOUD_SDK_IAM_ENDPOINT"
REGIONS_FILE_ENV = "HUAWEICLOUD_SDK_REGIONS_FILE"
MAX_REGIONS_FILE = 1024 * 1024

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

# The city in each region's console name ("AP-Singapore", "CN North-Beijing4"), so that
# ``--region singapore`` can be answered with the id it means. Regions whose console name
# carries no city we are sure of are left out: no suggestion beats a wrong one.
REGION_CITIES: Mapping[str, str] = {
    "af-south-1": "Johannesburg",
    "af-north-1": "Cairo",
    "cn-north-1": "Beijing",
    "cn-north-2": "Beijing",
    "cn-north-4": "Beijing",
    "cn-north-9": "Ulanqab",
    "cn-east-2": "Shanghai",
    "cn-east-3": "Shanghai",
    "cn-east-5": "Qingdao",
    "cn-south-1": "Guangzhou",
    "cn-south-2": "Shenzhen",
    "cn-south-4": "Guangzhou",
    "cn-southwest-2": "Guiyang",
    "ap-southeast-1": "Hong Kong",
    "ap-southeast-2": "Bangkok",
    "ap-southeast-3": "Singapore",
    "ap-southeast-4": "Jakarta",
    "ap-southeast-5": "Manila",
    "ru-northwest-2": "Moscow",
    "ru-moscow-1": "Moscow",
    "sa-brazil-1": "Sao Paulo",
    "la-north-2": "Mexico City",
    "la-south-2": "Santiago",
    "na-mexico-1": "Mexico City",
    "tr-west-1": "Istanbul",
    "ae-ad-1": "Abu Dhabi",
    "eu-west-0": "Paris",
    "my-kualalumpur-1": "Kuala Lumpur",
    "me-east-1": "Riyadh",
    "eu-west-101": "Dublin",
}
_REGION_ID_RE = re.compile(r"[a-z]+(-[a-z0-9]+)*-[0-9]+")  # the shape of an id: ends -<n>


def normalise_region(region: str) -> str:
    """``region`` as the tables spell it: ids are lower case (``AP-SOUTHEAST-1`` works)."""
    return region.strip().lower()


def _key(text: str) -> str:
    # "São Paulo", "sao-paulo" and "SAOPAULO" are one key; so are "ap_southeast_1" and the id.
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def suggest_regions(text: str) -> list[str]:
    """The region ids ``text`` may mean: an id spelled another way, a city (every region of
    it, ``moscow`` has two), or the closest ids and cities by spelling; [] when none is close."""
    key = _key(text)
    if not key:
        return []
    ids = sorted(RDS_REGIONS)
    exact = [r for r in ids if _key(r) == key or _key(REGION_CITIES.get(r, "")) == key]
    if exact:
        return exact
    # "ap-singapore", "singapore-1", "mexico": a city named inside the text, or the text
    # inside a city's name.
    within = [
        r
        for r in ids
        if (city := _key(REGION_CITIES.get(r, "")))
        and (city in key or key in city)
        and len(key) >= 4
    ]
    if within:
        return within
    by_key = {_key(r): [r] for r in ids}
    for region, city in REGION_CITIES.items():
        by_key.setdefault(_key(city), []).append(region)
    close = difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.75)
    return sorted({r for k in close for r in by_key[k]})


def _named(region: str) -> str:
    city = REGION_CITIES.get(region)
    return f"{region} ({city})" if city else region


def unknown_region_message(region: str, service: str, variable: str) -> str:
    """Why ``region`` cannot be used, what it may mean, and how to name a region the table
    lacks (``variable``, the override to set)."""
    hint = suggest_regions(region)
    did_you_mean = f"did you mean {' or '.join(_named(r) for r in hint)}? " if hint else ""
    known = ", ".join(sorted(RDS_REGIONS))
    return (
        f"unknown region {region!r} for {service}; {did_you_mean}known regions: {known}; "
        f"for a region newer than this list set {variable}"
    )


def _domain(region: str) -> str:
    return "myhuaweicloud.eu" if region in _EU_REGIONS else "myhuaweicloud.com"


def rds_env_name(region: str) -> str:
    """The override variable the SDK reads for ``region`` (``-`` -> ``_``, upper case)."""
    return RDS_ENV_PREFIX + region.replace("-", "_").upper()


def with_scheme(endpoint: str) -> str:
    """``endpoint`` with ``https://`` in front when it names no scheme (``rds.example.com``),
    as huaweicloudsdkcore's ``ClientBuilder.build`` does; no trailing slash."""
    endpoint = endpoint.strip().rstrip("/")
    if endpoint and "://" not in endpoint:
        endpoint = "https://" + endpoint
    return endpoint


def _endpoint_list(value: str) -> tuple[str, ...]:
    return tuple(with_scheme(item) for item in value.split(",") if item.strip())


def regions_file_path(env: Mapping[str, str]) -> Path | None:
    """The SDK's regions file: ``HUAWEICLOUD_SDK_REGIONS_FILE``, else
    ``$HOME/.huaweicloud/regions.yaml`` (None without a HOME)."""
    named = env.get(REGIONS_FILE_ENV)
    if named:
        return Path(named)
    home = env.get("HOME")
    return Path(home, ".huaweicloud", "regions.yaml") if home else None


def parse_regions_file(
    obj: object, service: str, region: str, where: str = "regions file"
) -> tuple[str, ...]:
    """The endpoints ``obj`` (a loaded regions file) lists for ``service`` in ``region``.

    The SDK's shape: ``{SERVICE: [{id, endpoint | endpoints}]}``, the service name in any
    case; an entry's ``endpoints`` come first, then its ``endpoint``."""
    if obj is None:
        return ()
    if not isinstance(obj, dict):
        raise UsageError(f"{where} is not a mapping of services to regions")
    for name, entries in obj.items():
        if str(name).upper() != service.upper():
            continue
        if not isinstance(entries, list):
            raise UsageError(f"{where}: {name} is not a list of regions")
        for entry in entries:
            if not isinstance(entry, dict) or normalise_region(str(entry.get("id", ""))) != region:
                continue
            listed = entry.get("endpoints") or []
            if not isinstance(listed, list):
                raise UsageError(f"{where}: {name} {region} endpoints is not a list")
            single = entry.get("endpoint")
            found = [*listed, *([single] if single else [])]
            if not all(isinstance(e, str) for e in found):
                raise UsageError(f"{where}: {name} {region} has an endpoint that is not text")
            return tuple(with_scheme(e) for e in found if e.strip())
    return ()


def _regions_file_endpoints(region: str, env: Mapping[str, str]) -> tuple[str, ...]:
    import yaml

    path = regions_file_path(env)
    if path is None:
        return ()
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_REGIONS_FILE + 1)
    except FileNotFoundError:
        return ()  # as the SDK: no file, no custom regions
    except OSError as exc:
        raise UsageError(f"cannot read regions file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_REGIONS_FILE:
        raise UsageError(f"regions file {path} is larger than 1 MiB")
    try:
        obj = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"regions file {path} is not valid YAML{at}") from exc
    return parse_regions_file(obj, "RDS", region, f"regions file {path}")


def _first_endpoint(value: str) -> str | None:
    listed = _endpoint_list(value)
    return listed[0] if listed else None


def rds_endpoint(region: str, env: Mapping[str, str]) -> str:
    """The RDS API base URL (``https://host``, no trailing slash) for ``region``."""
    return rds_endpoints(region, env)[0]


def rds_endpoints(region: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """Every RDS API base URL for ``region``, in the order to try them (at least one)."""
    region = normalise_region(region)
    override = env.get(rds_env_name(region), "") if region else ""
    listed = _endpoint_list(override) or (_regions_file_endpoints(region, env) if region else ())
    if listed:
        return listed
    if region in RDS_REGIONS:
        return (f"https://rds.{region}.{_domain(region)}",)
    # The override is named after a region id: for a city or a typo, naming the variable
    # after it (HUAWEICLOUD_SDK_REGION_RDS_SINGAPORE) would lead the user astray.
    named = region if _REGION_ID_RE.fullmatch(region) else "<region-id>"
    variable = rds_env_name(named) if named == region else RDS_ENV_PREFIX + "<REGION_ID>"
    raise UsageError(
        unknown_region_message(
            region, "RDS", f"{variable}=https://rds.{named}.myhuaweicloud.com (or pass --endpoint)"
        )
    )


def iam_endpoint(region: str, env: Mapping[str, str]) -> str:
    """The IAM base URL: ``HUAWEICLOUD_SDK_IAM_ENDPOINT`` or the regional IAM host."""
    endpoint = _first_endpoint(env.get(IAM_ENDPOINT_ENV, ""))
    if endpoint is not None:
        return endpoint
    region = normalise_region(region)
    if region in RDS_REGIONS:
        return f"https://iam.{region}.{_domain(region)}"
    raise UsageError(
        unknown_region_message(
            region, "IAM", f"{IAM_ENDPOINT_ENV}=https://iam.<region-id>.myhuaweicloud.com"
        )
    )
