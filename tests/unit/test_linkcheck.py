"""downloader.wire.linkcheck: which presigned links a GET can be sent to, checked before
yarl or the resolver's IDNA encoding would raise on them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader.wire.linkcheck import link_problem

SIGNED = "?AccessKeyId=AK&Expires=1700000000&Signature=a%2Fb%3D"


@pytest.mark.parametrize(
    "url",
    [
        "https://bucket.obs.ap-southeast-1.myhuaweicloud.com/backups/f.qp" + SIGNED,
        "http://127.0.0.1:8080/obs/b/k" + SIGNED,
        "https://rdsbucket.x.1.obs.cn-north-4.myhuaweicloud.com:443/k",
        "http://[::1]:9000/k",
        "http://host.example./k",
        "http://host:/k",
    ],
)
def test_usable_links_pass(url: str) -> None:
    assert link_problem(url) is None


@pytest.mark.parametrize(
    ("netloc", "words"),
    [
        ("127.0.0.1:99999", "port"),
        ("127.0.0.1:-1", "port"),
        ("127.0.0.1:abc", "port"),
        ("127.0.0.1:0", "port"),
        ("a..b:80", "empty label"),
        (".a:80", "empty label"),
        ("a" * 64 + ".com", "longer than 63"),
        ("a" * 300 + ".com", "longer than 253"),
        ("127\uff0e0\uff0e0\uff0e1:80", "not plain ASCII"),
        ("localhost\uff0e\uff0e:80", "not plain ASCII"),
        ("a b:80", "characters"),
        ("", "no host"),
        ("[::zz]:80", "not a URL"),
        ("[fe80::1%25eth0", "not a URL"),
        ("[::1]x", "other than a port"),
    ],
)
def test_hostile_links_are_named_without_echoing_them(netloc: str, words: str) -> None:
    url = f"http://{netloc}/obs/b/k{SIGNED}"
    problem = link_problem(url)
    assert problem is not None and words in problem
    assert "Signature" not in problem and (not netloc or netloc not in problem)


def test_only_http_and_https() -> None:
    assert link_problem("ftp://host/k") == "it is not an http(s) URL"
    assert link_problem("http://[::1/k") == "it is not a URL"


@given(st.text(max_size=80))
def test_any_host_text_either_passes_yarl_and_idna_or_is_named(host: str) -> None:
    from yarl import URL

    url = f"http://{host}/k"
    if link_problem(url) is None:
        parsed = URL(url, encoded=True)
        assert parsed.port is not None
        assert parsed.host is not None
        parsed.host.encode("idna")  # what the resolver does before getaddrinfo
