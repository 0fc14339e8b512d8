"""A Huawei-style API error raised inside a simulator handler, and the query parameters
the handlers share."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


class ApiReject(Exception):
    """Raised inside a handler to answer with a Huawei-style error body."""

    def __init__(
        self, status: int, code: str, msg: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}


def int_param(raw: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiReject(400, "DBS.200001", f"Parameter error: {name} is invalid.") from None
    if value < low or (high is not None and value > high):
        raise ApiReject(400, "DBS.200001", f"Parameter error: {name} is out of range.")
    return value
