"""Who may open the review page: whoever has the access token printed when it starts.

Every request (the page, its scripts and the WebSocket) needs the token: given once in the URL
(``?token=...``), it is then kept in a same-site cookie for the rest of the session. On 127.0.0.1 (the
default) the page is reachable from this computer only, and the token still keeps out other web pages open in
the same browser (a page of any site may open a WebSocket to 127.0.0.1) and other users of this computer.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from aiohttp import web

from cmrseg.errors import CMRSegError


def cookieName(port: int) -> str:
    """The token's cookie, one per port: browsers share cookies across the ports of one host, so two reviews
    open in one browser would otherwise overwrite each other's token."""
    return f"cmrseg_review_{port}"


def isLoopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checkedHost(host: str) -> str:
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise CMRSegError(f"--host {host!r} is not an IP address (e.g. 127.0.0.1 or 0.0.0.0).") from None
    return host


def newToken() -> str:
    return secrets.token_urlsafe(24)


def tokenMiddleware(token: str, cookie: str):
    """An aiohttp middleware that answers 403 to any request without the token (URL or the ``cookie``)."""

    @web.middleware
    async def requireToken(request: web.Request, handler):
        given = request.query.get("token") or request.cookies.get(cookie) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=403, text="CMRSeg review: open the address with its access token.")
        if not sameOrigin(request):  # a page of another port or site, sending the cookie the browser holds
            return web.Response(status=403, text="CMRSeg review: requests from other pages are refused.")
        response = await handler(request)
        if request.query.get("token") and isinstance(response, web.StreamResponse) and not response.prepared:
            response.set_cookie(cookie, token, httponly=True, samesite="Strict")
        return response

    return requireToken


def sameOrigin(request: web.Request) -> bool:
    """Whether a request comes from the review's own page: no ``Origin`` (a plain navigation) or one naming
    this very host and port. Browsers send a port's cookies to every port of the host, and a WebSocket is not
    bound by the same-origin policy: the token cookie alone would let any local page in."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.lower() in (f"http://{request.host}".lower(), f"https://{request.host}".lower())
