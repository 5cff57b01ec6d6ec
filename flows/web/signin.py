"""The gate every request passes (a session for everything but sign-in and static files, the CSRF token on
every POST, the size limit before an upload is read) and the sign-in and sign-out pages."""
from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp

from .auth import Session
from .config import WebConfig
from .store import WebStore

__all__ = ["COOKIE", "PRE_COOKIE", "Gate", "SignIn"]

COOKIE = "booking_session"
PRE_COOKIE = "booking_presession"

Handler = Callable[[Request], Awaitable[Response]]
Page = Callable[..., HTMLResponse]


class SignIn:
    """Sessions for one app: who a request is, the CSRF check, and the sign-in and sign-out handlers."""

    def __init__(self, config: WebConfig, store: WebStore, page: Page) -> None:
        self.config, self.store, self.page = config, store, page
        self.signer, self.accounts = config.signer, config.accounts

    def session_of(self, request: Request) -> Session | None:
        return self.signer.load(request.cookies.get(COOKIE))

    async def check_csrf(self, request: Request) -> bool:
        s: Session = request.state.session
        given = request.headers.get("x-csrf-token")
        if given is None:
            form = await request.form()
            given = form.get("csrf")
        return isinstance(given, str) and secrets.compare_digest(given, s.csrf)

    def guarded(self, handler: Handler) -> Handler:
        """Every POST needs the session's CSRF token (checked in the handler: the form is read only once)."""
        async def wrapped(request: Request) -> Response:
            if request.method == "POST" and not await self.check_csrf(request):
                self.store.record(request.state.session.user, "csrf refused", request.url.path)
                return HTMLResponse("This form is out of date or did not come from this page (CSRF check failed): "
                                    "reload the page and try again.", status_code=403)
            return await handler(request)
        return wrapped

    async def login(self, request: Request) -> Response:
        config, store, page = self.config, self.store, self.page
        if request.method == "GET":  # one pre-session token per browser (a second tab, a favicon fetch keep it)
            token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
            r = page(request, "login.html", pre=token)
            r.set_cookie(PRE_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies)
            return r
        form = await request.form()
        pre = request.cookies.get(PRE_COOKIE) or ""
        if not pre or not secrets.compare_digest(str(form.get("csrf", "")), pre):
            return HTMLResponse("The sign-in form is out of date (CSRF check failed): <a href='/login'>reload it</a>.",
                                status_code=403)
        name, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        ip = request.client.host if request.client else ""
        throttle = config.throttle
        wait = throttle.wait_left(name, ip)
        if wait > 0:  # the password is not even checked
            store.record(name or "?", "sign-in throttled", ip)
            seconds = math.ceil(wait)
            token = secrets.token_urlsafe(24)
            r = page(request, "login.html", status_code=429, pre=token,
                     error=f"Too many failed sign-ins for this name or from this address: wait {seconds} s and try "
                           f"again (ask whoever runs this page if you forgot your password).")
            r.headers["Retry-After"] = str(seconds)
            r.set_cookie(PRE_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies)
            return r
        if not self.accounts.check(name, password):
            throttle.failed(name, ip)
            store.record(name or "?", "sign-in refused", ip)
            token = secrets.token_urlsafe(24)
            r = page(request, "login.html", status_code=401, pre=token, error="Wrong name or password.")
            r.set_cookie(PRE_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies)
            return r
        throttle.succeeded(name, ip)
        s = self.signer.new(name)
        store.record(name, "signed in")
        r = RedirectResponse("/", status_code=303)
        r.set_cookie(COOKIE, self.signer.dump(s), httponly=True, samesite="strict", secure=config.secure_cookies,
                     max_age=int(self.signer.max_age))
        r.delete_cookie(PRE_COOKIE)
        return r

    async def logout(self, request: Request) -> Response:
        self.signer.revoke(request.state.session)
        self.store.record(request.state.session.user, "signed out")
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(COOKIE)
        return r


class Gate(BaseHTTPMiddleware):
    """A session for everything but sign-in and static files; an oversized POST refused before it is read."""

    def __init__(self, app: ASGIApp, signin: SignIn) -> None:
        super().__init__(app)
        self.signin = signin

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Any:
        config, store = self.signin.config, self.signin.store
        path = request.url.path
        if path == "/favicon.ico":
            return Response(status_code=404)
        if path.startswith("/static/") or path == "/login":
            return await call_next(request)
        s = self.signin.session_of(request)
        if s is None:
            if request.method == "GET":
                return RedirectResponse("/login", status_code=303)
            return HTMLResponse("Sign in first: <a href='/login'>sign in</a>.", status_code=401,
                                headers={"HX-Redirect": "/login"})
        request.state.session = s
        if request.method == "POST":
            length = int(request.headers.get("content-length") or 0)
            if length > config.max_bytes + 256 * 1024:  # before anything is read or stored
                store.record(s.user, "upload refused", f"{length} bytes")
                return HTMLResponse(f"<p class='error'>The file is larger than {config.max_bytes / 2**20:g} MB: "
                                    f"split it into smaller sheets. <a href='/'>Back</a></p>", status_code=413)
        return await call_next(request)
