"""The dashboard's authentication (docs/architecture.md, "The web dashboard", "Security model").

Every page and API call needs the cluster token. A browser posts it once to the login page and
gets a session cookie: ``<expiry>.<HMAC-SHA256(server secret, expiry)>``, HttpOnly,
SameSite=Strict, Secure when served over TLS, valid for `SESSION_SECONDS`. The server secret
is random per dashboard process, so restarting the dashboard ends every session. An API client
may instead send ``Authorization: Bearer <token>``. Secrets are compared in constant time.

`SessionKeeper` makes and checks cookies and tokens; `auth_middleware` turns a request without
valid credentials into a 401 JSON error (``/api/...``) or a redirect to the login page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

from aiohttp import web

__all__ = ["COOKIE_NAME", "SESSION_SECONDS", "SessionKeeper", "auth_middleware"]

COOKIE_NAME = "actorcore_session"
SESSION_SECONDS = 12 * 3600
#: paths served without credentials: the login page and what it loads
PUBLIC_PATHS = frozenset({"/login", "/static/dashboard.css", "/favicon.ico"})


class SessionKeeper:
    """Checks the cluster token and issues and checks session cookies."""

    def __init__(self, token: str, *, lifetime: float = SESSION_SECONDS) -> None:
        if not token:
            raise ValueError("the dashboard needs the cluster token (none was given)")
        self._token = token.encode()
        self._secret = secrets.token_bytes(32)
        self.lifetime = lifetime

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._token)

    def new_cookie(self, now: float | None = None) -> str:
        expiry = str(int((time.time() if now is None else now) + self.lifetime))
        return f"{expiry}.{self._sign(expiry)}"

    def cookie_valid(self, value: str, now: float | None = None) -> bool:
        expiry, _, signature = value.partition(".")
        if not expiry.isdigit() or not hmac.compare_digest(signature.encode(), self._sign(expiry).encode()):
            return False
        return int(expiry) > (time.time() if now is None else now)

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def authenticated(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return self.token_matches(credentials)
        cookie = request.cookies.get(COOKIE_NAME)
        return bool(cookie) and self.cookie_valid(cookie)

    def set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        response.set_cookie(COOKIE_NAME, self.new_cookie(), max_age=int(self.lifetime), path="/",
                            httponly=True, samesite="Strict", secure=request.secure)


def auth_middleware(keeper: SessionKeeper):
    """The aiohttp middleware that lets only authenticated requests reach the handlers."""

    @web.middleware
    async def check(request: web.Request, handler):
        if request.path in PUBLIC_PATHS or keeper.authenticated(request):
            return await handler(request)
        if request.path.startswith("/api/"):
            return web.json_response({"error": "unauthorized: log in or send 'Authorization: Bearer <cluster token>'"},
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="actorcore"'})
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")

    return check
