"""slashbots.proxies: which proxy the environment names for a URL, read as urllib (and aiohttp, httpx) read it."""

from __future__ import annotations

import base64

import pytest

from slashbots.app import StartupError, create_app
from slashbots.config import parse_config
from slashbots.proxies import UnsupportedProxy, proxy_for

VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_https_urls_take_https_proxy_and_http_urls_http_proxy(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://secure-egress:3129")
    monkeypatch.setenv("HTTP_PROXY", "http://plain-egress:3128")
    assert proxy_for("https://chat.stream-io-api.com").url == "http://secure-egress:3129"
    assert proxy_for("http://localhost:8000").url == "http://plain-egress:3128"


def test_no_variable_no_proxy():
    assert proxy_for("https://chat.stream-io-api.com") is None


def test_lower_case_names_count_and_win(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://lower:1")
    assert proxy_for("https://example.com").url == "http://lower:1"
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:2")
    assert proxy_for("https://example.com").url == "http://lower:1"


@pytest.mark.parametrize("no_proxy, host, direct", [
    ("stream-io-api.com", "chat.stream-io-api.com", True),     # a name covers its subdomains
    (".stream-io-api.com", "chat.stream-io-api.com", True),    # with or without the leading dot
    ("chat.stream-io-api.com", "chat.stream-io-api.com", True),
    ("stream-io-api.com", "notstream-io-api.com", False),      # a suffix of the name is not a domain
    ("internal, stream-io-api.com ", "chat.stream-io-api.com", True),
    ("*", "anything.example", True),
    ("127.0.0.1", "127.0.0.1", True),
    ("localhost", "127.0.0.1", False),                         # names are not resolved to compare
    ("", "chat.stream-io-api.com", False),
])
def test_no_proxy(monkeypatch, no_proxy, host, direct):
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (proxy_for(f"https://{host}/path") is None) == direct


def test_credentials_become_the_proxy_authorization_header_and_appear_nowhere_else(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://bots%40corp:p%40ss%3Aword@egress.corp:3128")
    proxy = proxy_for("https://chat.stream-io-api.com")
    assert proxy.authorization == "Basic " + base64.b64encode(b"bots@corp:p@ss:word").decode()
    assert proxy.url == str(proxy) == "http://egress.corp:3128"
    assert "p@ss" not in repr(proxy) and "p%40ss" not in repr(proxy)
    said = "url='http://bots%40corp:p%40ss%3Aword@egress.corp:3128' (p@ss:word)"
    assert "p%40ss" not in proxy.hide(said) and "p@ss" not in proxy.hide(said)


def test_a_proxy_without_scheme_or_port_is_http_on_port_80(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "egress.corp")
    proxy = proxy_for("http://example.com")
    assert (proxy.host, proxy.port, proxy.authorization) == ("egress.corp", 80, None)


@pytest.mark.parametrize("setting, says", [
    ("https://user:secret@egress:3129", "HTTPS_PROXY is https://egress:3129: only http:// proxies"),
    ("socks5://user:secret@egress:1080", "HTTPS_PROXY is socks5://egress:1080: only http:// proxies"),
    ("http://user:secret@egress:port", "HTTPS_PROXY names a port that is not a number"),
])
def test_a_proxy_the_clients_cannot_speak_to_is_refused_by_name_without_its_password(monkeypatch, setting, says):
    monkeypatch.setenv("HTTPS_PROXY", setting)
    with pytest.raises(UnsupportedProxy, match=says) as caught:
        proxy_for("https://chat.stream-io-api.com")
    assert "secret" not in str(caught.value)


def test_the_server_does_not_start_with_an_unsupported_proxy(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://egress:1080")
    config = parse_config(
        "stream: {api_key: k, api_secret: s}\nbots:\n  - {command: echo, description: Echo, provider: echo,"
        " channel_types: [messaging], identity: {id: echo-bot, name: Echo}}\n", "bots.yaml", {})
    with pytest.raises(StartupError, match="only http:// proxies"):
        create_app(config, stream_url="https://chat.stream-io-api.com")
