"""Browser sessions: a signed cookie, a CSRF token bound to it, and the key that signs both.

- The session cookie holds ``{"u": user name, "s": session id, "p": password fingerprint}``,
  signed and timestamped with itsdangerous. It is checked against the store on every request:
  a disabled user, a deleted user or a changed password ends the session at once.
- The CSRF token is an HMAC of the session id. Pages render it into
  ``<meta name="csrf-token">``; the page's JavaScript sends it back as ``X-CSRF-Token``.
  A cross-site page can make the browser send the cookie but can neither read the token nor
  add a custom header without a CORS preflight, which this service never grants.
- The sign-in form, used before any session exists, is protected the same way with a signed
  random nonce in a short-lived cookie and its HMAC in a hidden field (double submit).
- The key: ``CHAMPIPY_SECRET_KEY``, or else a random key generated once and kept in
  ``data_dir/secret_key`` (mode 0600), so sessions survive restarts and every process that
  shares the data directory agrees on it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from ..errors import Forbidden
from ..settings import Settings
from ..store.base import Store, User

log = logging.getLogger(__name__)

SESSION_COOKIE = "champipy_session"
LOGIN_COOKIE = "champipy_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE = 7 * 24 * 3600
LOGIN_MAX_AGE = 2 * 3600
SECRET_FILE = "secret_key"
MIN_SECRET_CHARS = 32
CSRF_FAILED = f"Missing or invalid CSRF token: pages send it in the {CSRF_HEADER} header."


def load_secret_key(settings: Settings) -> bytes:
    """The configured key, or the one kept in the data directory (created on first use)."""
    if settings.secret_key:
        if len(settings.secret_key) < MIN_SECRET_CHARS:
            log.warning("CHAMPIPY_SECRET_KEY is shorter than %d characters: use a long random value", MIN_SECRET_CHARS)
        return settings.secret_key.encode("utf-8")
    if settings.redis_url:  # Redis means several processes, maybe on several machines
        log.warning(
            "CHAMPIPY_SECRET_KEY is not set: this process signs sessions with its own key, which "
            "other API replicas reject; give every replica the same CHAMPIPY_SECRET_KEY"
        )
    path = settings.ensure_data_dir() / SECRET_FILE
    existing = _read_key_file(path)
    if existing:
        return existing
    _create_key_file(path)
    key = _read_key_file(path)
    if not key:
        raise RuntimeError(f"could not read the secret key in {path}")
    return key


def _read_key_file(path: Path) -> bytes | None:
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); restricting it to 0600", path, mode)
        os.chmod(path, 0o600)
    return key or None


def _create_key_file(path: Path) -> None:
    """Write a new key atomically; when two processes race, the first one's key wins."""
    key = secrets.token_urlsafe(48) + "\n"
    temporary = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        try:
            os.link(temporary, path)  # complete or absent, and fails if another process got there first
        except FileExistsError:
            return
        except OSError:  # a file system without hard links: exclusive create instead
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return
            with os.fdopen(fd, "w") as handle:
                handle.write(key)
        log.info("generated a secret key for sessions in %s", path)
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class Session:
    username: str
    session_id: str
    password_fingerprint: str
    generation: str = "0"  # the user's session generation when it was issued; logout moves it on


def _generation_key(username: str) -> str:
    return f"session_generation:{username}"


class SessionManager:
    """Issues and checks session cookies and CSRF tokens for one application."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._key: bytes | None = None
        self._lock = threading.Lock()

    # --- keys ------------------------------------------------------------------------------
    @property
    def key(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = load_secret_key(self.settings)
        return self._key

    def _mac(self, purpose: str, value: str) -> str:
        derived = hmac.new(self.key, f"champipy.{purpose}".encode(), hashlib.sha256).digest()
        return hmac.new(derived, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def _serializer(self, salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.key, salt=salt)

    # --- sessions --------------------------------------------------------------------------
    def issue(self, user: User, store: Store) -> tuple[str, Session]:
        """A new session (a new id at every sign-in) and its signed cookie value."""
        session = Session(
            user.username, secrets.token_urlsafe(18), self._fingerprint(user), self._generation(user.username, store)
        )
        value = self._serializer("champipy.session").dumps(
            {"u": session.username, "s": session.session_id, "p": session.password_fingerprint, "g": session.generation}
        )
        return value, session

    def end_all(self, username: str, store: Store) -> None:
        """Sign out: every session cookie of the user stops working, a copied one included."""
        store.set_parameter(_generation_key(username), secrets.token_hex(8))

    @staticmethod
    def _generation(username: str, store: Store) -> str:
        return store.get_parameter(_generation_key(username)) or "0"

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie whose signature and age are valid, else None."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._serializer("champipy.session").loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in "usp"):
            return None
        generation = data.get("g", "0")
        return Session(data["u"], data["s"], data["p"], generation if isinstance(generation, str) else "")

    def user(self, session: Session | None, store: Store) -> User | None:
        """The session's user while it exists, is enabled and keeps the same password."""
        if session is None:
            return None
        user = store.get_user(session.username)
        if user is None or user.disabled:
            return None
        if not hmac.compare_digest(self._fingerprint(user), session.password_fingerprint):
            return None
        if not hmac.compare_digest(self._generation(user.username, store), session.generation):
            return None  # signed out since
        return user

    def _fingerprint(self, user: User) -> str:
        return self._mac("password", user.password_hash)[:32]

    # --- CSRF ------------------------------------------------------------------------------
    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.session_id)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(session), token)

    def require_csrf(self, session: Session, token: str | None) -> None:
        if not self.csrf_ok(session, token):
            raise Forbidden(CSRF_FAILED)

    # --- the sign-in form -----------------------------------------------------------------
    def login_nonce(self, cookie: str | None) -> tuple[str, str]:
        """(cookie value, form token): reuses a valid nonce so that two open tabs both work."""
        nonce = self._read_login_cookie(cookie) or secrets.token_urlsafe(18)
        return self._serializer("champipy.login").dumps(nonce), self._mac("login", nonce)

    def login_ok(self, cookie: str | None, token: str | None) -> bool:
        nonce = self._read_login_cookie(cookie)
        if not nonce or not token:
            return False
        return hmac.compare_digest(self._mac("login", nonce), token)

    def _read_login_cookie(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 512:
            return None
        try:
            nonce = self._serializer("champipy.login").loads(cookie, max_age=LOGIN_MAX_AGE)
        except BadSignature:
            return None
        return nonce if isinstance(nonce, str) else None


def user_from_session_cookie(request: Request, store: Store) -> User | None:
    """The API's view of a browser session: the user of a valid session cookie, or None.

    A request authenticated this way must carry the session's CSRF token in the
    ``X-CSRF-Token`` header, whatever its method: the original API has a state-changing GET
    (``GET /finetune``), and a cross-site page cannot add the header, so requiring it on every
    cookie-authenticated call closes that door too. Requests with an Authorization header
    never get here.
    """
    manager: SessionManager | None = getattr(request.app.state, "sessions", None)
    if manager is None:
        return None
    session = manager.read(request.cookies.get(SESSION_COOKIE))
    user = manager.user(session, store)
    if session is None or user is None:
        return None
    manager.require_csrf(session, request.headers.get(CSRF_HEADER))
    return user
