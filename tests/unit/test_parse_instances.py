"""ListInstances answers -> :class:`~downloader.models.Instance`, a bad field named."""

from __future__ import annotations

import pytest

from downloader.api.parse import parse_instances
from downloader.errors import ResponseFormatError


def test_a_documented_answer() -> None:
    answer = {
        "instances": [
            {
                "id": "ed7cc6166ec24360a5ed5c5c9c2ed726in01",
                "name": "mysql-prod",
                "status": "ACTIVE",
                "type": "Ha",
                "datastore": {"type": "MySQL", "version": "8.0"},
                "port": 3306,
                "private_ips": ["192.168.0.142"],
                "created": "2018-08-20T02:33:49+0800",
            },
            {"id": "0b4dc8fd3e0a4d2f9c5d1e9b5e3e1a8bin03", "type": "Replica"},
        ],
        "total_count": 7,
    }
    instances, total = parse_instances(answer)
    assert total == 7
    assert [(i.id, i.type, i.engine, i.engine_version) for i in instances] == [
        ("ed7cc6166ec24360a5ed5c5c9c2ed726in01", "Ha", "MySQL", "8.0"),
        ("0b4dc8fd3e0a4d2f9c5d1e9b5e3e1a8bin03", "Replica", None, None),
    ]
    assert parse_instances({"instances": []}) == ([], 0)


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ([], "response"),
        ({}, "instances"),
        ({"instances": {}}, "instances"),
        ({"instances": [{"name": "x"}]}, "instances[0].id"),
        ({"instances": [{"id": ""}]}, "instances[0].id"),
        ({"instances": [{"id": "a"}, {"id": 5}]}, "instances[1].id"),
        ({"instances": [{"id": "a", "datastore": "MySQL"}]}, "instances[0].datastore"),
        ({"instances": [{"id": "a", "type": 1}]}, "instances[0].type"),
        ({"instances": [], "total_count": "3"}, "total_count"),
    ],
)
def test_a_bad_field_is_named(answer: object, field: str) -> None:
    with pytest.raises(ResponseFormatError) as caught:
        parse_instances(answer)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"unexpected API response: {field}: ")
