"""Dependencies used directly in route signatures, so each route shows its access level."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBasic, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..app_deps import ContainerDep
from ..container import Container
from ..errors import Forbidden, Unauthorized
from ..store.base import User
from ..timing import stage
from ..web.session import user_from_session_cookie
from .request_log import note_user


class _BasicForDocs(HTTPBasic):
    """Declared for the OpenAPI page only. FastAPI's own parser decodes the credentials as
    ASCII and refuses UTF-8 passwords ("pässwörd"); ours below reads UTF-8, and gives every
    malformed form the same clear 401."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_basic_doc = _BasicForDocs(auto_error=False, description="User name and password")
_bearer_doc = HTTPBearer(auto_error=False, description="API token from POST /tokens")


def _authorization(request: Request) -> tuple[str, str]:
    """(lower-case scheme, credentials) of the Authorization header; empty strings when absent."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower(), credentials.strip()


def _authenticate(request: Request, container: Container) -> User:
    if not request.headers.get("authorization"):
        raise Unauthorized("Sign in: send HTTP Basic credentials or an API token (Authorization: Bearer ...).")
    scheme, credentials = _authorization(request)
    if scheme == "bearer" and credentials:
        return container.authenticator.with_token(credentials)
    if scheme == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Malformed Basic credentials: expected base64 of 'user:password'.") from None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise Unauthorized("Malformed Basic credentials: expected base64 of 'user:password'.")
        client = request.client.host if request.client else ""
        return container.authenticator.with_password(username, password, client)
    raise Unauthorized("Unsupported Authorization header: use Basic or Bearer.")


def _resolve_user(request: Request, container: Container) -> User:
    # Scripts send Authorization and are unaffected by cookies; the web pages send the signed
    # session cookie plus the X-CSRF-Token header (a 403 without it).
    user = None
    if not request.headers.get("authorization"):
        user = user_from_session_cookie(request, container.store)
    return user or _authenticate(request, container)


async def current_user(
    request: Request,
    container: ContainerDep,
    _basic: None = Security(_basic_doc),
    _bearer: object = Security(_bearer_doc),
) -> User:
    # A remembered bearer token is a dict lookup: answered here, without a thread-pool hop.
    with stage("auth"):
        scheme, credentials = _authorization(request)
        user = None
        if scheme == "bearer" and credentials:
            user = container.authenticator.remembered_token_user(credentials)
        if user is None:
            user = await run_in_threadpool(_resolve_user, request, container)
    note_user(user.username)  # the access log line names who asked
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("This needs the admin role.")
    return user


AdminUser = Annotated[User, Depends(admin_user)]
