"""Who may open the review page: anyone on this computer by default; elsewhere only with the access token.

On 127.0.0.1 the page is reachable from this computer only. On any other address every request (the page,
its scripts and the WebSocket) needs the token: given once in the URL (``?token=...``), it is then kept in a
same-site cookie for the rest of the session.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from aiohttp import web

from cmrseg.errors import CMRSegError

COOKIE = "cmrseg_review"


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


def tokenMiddleware(token: str):
    """An aiohttp middleware that answers 403 to any request without the token (URL or cookie)."""

    @web.middleware
    async def requireToken(request: web.Request, handler):
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=403, text="CMRSeg review: open the address with its access token.")
        response = await handler(request)
        if request.query.get("token") and isinstance(response, web.StreamResponse) and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return requireToken
