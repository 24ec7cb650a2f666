"""The two pages: the user page at / and the admin dashboard at /admin, plus sign in/out.

Pages are rendered on the server; their scripts (static/*.js) call the JSON API with the
session cookie and the CSRF token from the page's meta tag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..app_deps import ContainerDep
from ..container import Container
from ..errors import RetryLater, Unauthorized
from ..mo_links import mo_hosts
from ..store.base import User
from .headers import PAGE_HEADERS
from .session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_MAX_AGE,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Session,
    SessionManager,
)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
PAGES = ("/", "/admin")  # where ``next`` may send a user after signing in
MAX_FIELD_CHARS = 1024


def _static_version() -> str:
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


STATIC_VERSION = _static_version()
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
router = APIRouter(include_in_schema=False)


def get_sessions(request: Request) -> SessionManager:
    return request.app.state.sessions


SessionsDep = Annotated[SessionManager, Depends(get_sessions)]


# --- helpers ---------------------------------------------------------------------------------
def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    root = _root(request)
    context.setdefault("user", None)
    context.setdefault("csrf_token", "")
    response = templates.TemplateResponse(
        request,
        template,
        {"root": root, "static_version": STATIC_VERSION, "app_version": __version__, **context},
        status_code=status,
    )
    response.headers.update(PAGE_HEADERS)
    return response


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _safe_next(value: str | None) -> str:
    return value if value in PAGES else "/"


def _signed_in(request: Request, container: Container, sessions: SessionManager) -> tuple[User, Session] | None:
    session = sessions.read(request.cookies.get(SESSION_COOKIE))
    user = sessions.user(session, container.store)
    return (user, session) if user is not None and session is not None else None


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(_root(request) + path, status_code=303)


def _sign_in_page(
    request: Request,
    sessions: SessionManager,
    *,
    next_page: str = "/",
    error: str = "",
    username: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    cookie, token = sessions.login_nonce(request.cookies.get(LOGIN_COOKIE))
    response = render(
        request,
        "signin.html",
        status,
        login_token=token,
        next_page=_safe_next(next_page),
        error=error,
        username=username,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        max_age=LOGIN_MAX_AGE,
        path=_root(request) + "/login",
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )
    if headers:
        response.headers.update(headers)
    return response


def _same_origin(request: Request) -> bool:
    """A browser's Origin header, when it sends one, must name this site."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def _page_context(user: User, session: Session, sessions: SessionManager) -> dict:
    return {"user": user, "csrf_token": sessions.csrf_token(session)}


# --- pages -----------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def user_page(request: Request, container: ContainerDep, sessions: SessionsDep) -> Response:
    signed_in = _signed_in(request, container, sessions)
    if signed_in is None:
        return _sign_in_page(request, sessions)
    user, session = signed_in
    return render(
        request,
        "user.html",
        **_page_context(user, session, sessions),
        uncertain_threshold=container.settings.uncertain_threshold,
        model=container.model_status(),
        mo_hosts=",".join(sorted(mo_hosts(container.settings.mo_api_url))),
    )


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, container: ContainerDep, sessions: SessionsDep) -> Response:
    signed_in = _signed_in(request, container, sessions)
    if signed_in is None:
        return _redirect(request, "/login?" + urlencode({"next": "/admin"}))
    user, session = signed_in
    context = _page_context(user, session, sessions)
    if not user.is_admin:
        return render(
            request,
            "error.html",
            403,
            **context,
            title="Admins only",
            message="The dashboard needs the admin role. Ask an admin to grant it to you.",
        )
    settings = container.settings
    return render(request, "admin.html", **context, settings=settings)


@router.get("/login", response_class=HTMLResponse)
def sign_in_form(request: Request, container: ContainerDep, sessions: SessionsDep, next: str = "/") -> Response:
    if _signed_in(request, container, sessions) is not None:
        return _redirect(request, _safe_next(next))
    return _sign_in_page(request, sessions, next_page=next)


@router.post("/login")
async def sign_in(request: Request, container: ContainerDep, sessions: SessionsDep) -> Response:
    form = await request.form()
    field = lambda name: str(form.get(name) or "")[:MAX_FIELD_CHARS]  # noqa: E731
    username, password, next_page = field("username").strip(), field("password"), _safe_next(field("next"))
    if not _same_origin(request) or not sessions.login_ok(request.cookies.get(LOGIN_COOKIE), field(CSRF_FIELD)):
        return _sign_in_page(
            request,
            sessions,
            next_page=next_page,
            username=username,
            status=403,
            error="This sign-in form has expired. Please sign in again.",
        )
    if not username or not password:
        return _sign_in_page(
            request,
            sessions,
            next_page=next_page,
            username=username,
            status=422,
            error="Enter your user name and password.",
        )
    client = request.client.host if request.client else ""
    try:
        user = await run_in_threadpool(container.authenticator.with_password, username, password, client)
    except Unauthorized as exc:
        return _sign_in_page(request, sessions, next_page=next_page, username=username, status=401, error=exc.detail)
    except RetryLater as exc:  # locked (429) or too many sign-ins being checked (503)
        return _sign_in_page(
            request,
            sessions,
            next_page=next_page,
            username=username,
            status=exc.status,
            error=exc.detail,
            headers={"Retry-After": str(exc.retry_after)},
        )
    cookie, _ = sessions.issue(user, container.store)
    response = _redirect(request, next_page)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE,
        path=_root(request) or "/",
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=_root(request) + "/login")
    return response


@router.post("/logout")
async def sign_out(request: Request, container: ContainerDep, sessions: SessionsDep) -> Response:
    form = await request.form()
    session = sessions.read(request.cookies.get(SESSION_COOKIE))
    if session is not None and not sessions.csrf_ok(session, str(form.get(CSRF_FIELD) or "")):
        signed_in = _signed_in(request, container, sessions)
        context = _page_context(*signed_in, sessions) if signed_in else {}
        return render(
            request,
            "error.html",
            403,
            **context,
            title="Sign-out refused",
            message="The sign-out request did not come from this site's page. Reload and try again.",
        )
    if session is not None and await run_in_threadpool(sessions.user, session, container.store) is not None:
        await run_in_threadpool(sessions.end_all, session.username, container.store)
    response = _redirect(request, "/")
    response.delete_cookie(
        SESSION_COOKIE, path=_root(request) or "/", httponly=True, samesite="lax", secure=_is_https(request)
    )
    return response
