"""Which proxy a call to Stream goes through: HTTPS_PROXY, HTTP_PROXY and NO_PROXY, as urllib reads them.

``https://`` URLs go through HTTPS_PROXY, ``http://`` ones through HTTP_PROXY; lower-case names
count too and win over upper-case ones. NO_PROXY lists hosts that are reached directly: a name
covers itself and its subdomains (``example.com`` and ``.example.com`` both cover
``chat.example.com``), an address itself, ``*`` every host. That is urllib's reading, which
aiohttp's ``trust_env`` also uses; the ChatGPT provider's httpx reads the same variables to the
same effect (and ALL_PROXY besides). Loopback addresses get no exception, as in urllib, httpx
and curl: behind a proxy, NO_PROXY should list ``localhost,127.0.0.1`` (the sandbox's stand-in
for Stream lives there). Like httpx, the environment is read when a client is built, once: a
running server does not see later changes.

A proxy URL may carry credentials (``http://user:password@proxy:3128``). They leave this module
only as the Proxy-Authorization header and in ``Proxy.url_with_credentials`` for aiohttp;
everything a person may read (``str``, ``repr``, error messages) shows the URL without them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies, proxy_bypass


class UnsupportedProxy(ValueError):
    """The environment names a proxy the clients for Stream cannot speak to (TLS to the proxy, SOCKS)."""


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it is, and the Proxy-Authorization header its credentials make."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)
    url_with_credentials: str = field(default="", repr=False)  # as written, for aiohttp's ``proxy=``

    @property
    def url(self) -> str:
        """The proxy's URL without credentials: safe to log and to show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def hide(self, text: str) -> str:
        """``text`` without this proxy's password, however a library spelled the URL that held it."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @property
    def _secrets(self) -> tuple[str, ...]:
        password = urlsplit(self.url_with_credentials).password
        return tuple({password, unquote(password)} - {""}) if password else ()


def proxy_for(url: str) -> Proxy | None:
    """The proxy the environment names for ``url``, or None to connect directly.

    Raises UnsupportedProxy for a proxy that is not ``http://``; its message names the
    variable and the proxy, not the credentials.
    """
    target = urlsplit(url)
    scheme, host = target.scheme.lower(), target.hostname
    setting = getproxies().get(scheme)
    if not setting or not host or proxy_bypass(host):
        return None
    if "://" not in setting:
        setting = "http://" + setting  # "proxy:3128", as urllib and httpx take it
    proxy = urlsplit(setting)
    variable = f"{scheme.upper()}_PROXY"
    try:
        port = proxy.port or 80
    except ValueError:  # urllib's message quotes the port, not the rest
        raise UnsupportedProxy(f"{variable} names a port that is not a number from 0 to 65535") from None
    if proxy.scheme.lower() != "http" or not proxy.hostname:
        shown = f"{proxy.scheme}://{proxy.hostname or ''}:{port}"
        raise UnsupportedProxy(f"{variable} is {shown}: only http:// proxies are supported for calls to Stream")
    authorization = None
    if proxy.username is not None or proxy.password is not None:
        credentials = f"{unquote(proxy.username or '')}:{unquote(proxy.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return Proxy(proxy.hostname, port, authorization, setting)
