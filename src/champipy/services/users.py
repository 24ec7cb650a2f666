"""Users, roles, API tokens and authentication."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from ..errors import Busy, Conflict, InvalidInput, NotFound, Unauthorized
from ..passwords import hash_api_token, hash_password, new_api_token, verify_password
from ..store.base import ApiToken, Role, User, utcnow
from ..store.ports import UserRepository
from .login_throttle import LoginThrottle
from .token_revocations import RevocationClock

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
WRONG_CREDENTIALS = "Wrong user name or password."
# A sign-in waits at most this long for a verification slot before it is told to come back.
VERIFICATION_WAIT_SECONDS = 10.0


@functools.cache
def _dummy_password_hash() -> str:
    """Verified for unknown and disabled users, so they cost what a wrong password costs."""
    return hash_password(secrets.token_urlsafe(16))


def validate_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInput("A user name has 1 to 64 letters, digits or the characters _ . @ -")
    return username


def validate_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"A password has at least {MIN_PASSWORD_LENGTH} characters.")
    return password


def roles_for(admin: bool) -> tuple[str, ...]:
    return (Role.USER.value, Role.ADMIN.value) if admin else (Role.USER.value,)


def add_user(store: UserRepository, username: str, password: str, *, admin: bool = False) -> User:
    validate_username(username)
    validate_password(password)
    return store.add_user(username, hash_password(password), roles_for(admin))


def set_password(store: UserRepository, username: str, password: str) -> User:
    validate_password(password)
    return store.update_user(username, password_hash=hash_password(password))


def set_admin(store: UserRepository, username: str, admin: bool) -> User:
    return store.update_user(username, roles=roles_for(admin))


def set_disabled(store: UserRepository, username: str, disabled: bool) -> User:
    return store.update_user(username, disabled=disabled)


def ensure_first_admin(store: UserRepository, password: str, username: str = "admin") -> User | None:
    """Create the first admin from CHAMPIPY_ADMIN_PASSWORD, only if no admin exists yet."""
    if not password or any(u.is_admin for u in store.list_users()):
        return None
    try:
        return add_user(store, username, password, admin=True)
    except Conflict:
        return None


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once; only its hash is stored
    record: ApiToken


def create_token(store: UserRepository, username: str, name: str, *, expires_in_days: int | None = None) -> IssuedToken:
    name = name.strip() or "api"
    if len(name) > 100:
        raise InvalidInput("A token name has at most 100 characters.")
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    token = new_api_token()
    return IssuedToken(token=token, record=store.add_token(username, name, hash_api_token(token), expires_at))


def revoke_token(store: UserRepository, username: str, token_id: str) -> None:
    if not store.revoke_token(username, token_id):
        raise NotFound("No such token.")


class Authenticator:
    """Checks HTTP Basic credentials and bearer tokens against the store.

    Argon2 costs ~100 ms by design, far more than a prediction, so a successful check is
    remembered for a short while, keyed by an HMAC of the credentials and bound to the stored
    hash it matched: changing the password invalidates it at once.

    A bearer token's user is remembered for ``token_cache_seconds``, which spares every API
    request two store reads (measured: a third of a cached prediction's time). Revoking a token
    on any replica bumps the shared ``RevocationClock``, which drops every replica's remembered
    users at once; a change made outside the API (``champipy users disable``) bumps it too.
    """

    def __init__(
        self,
        store: UserRepository,
        throttle: LoginThrottle,
        remember_seconds: float = 300.0,
        token_cache_seconds: float = 10.0,
        concurrent_verifications: int = 2,
        rehash_legacy_passwords: bool = True,
        revocations: RevocationClock | None = None,
    ):
        self.store = store
        self.revocations = revocations
        # Off: an original (bcrypt) hash stays as it is, so rolling back to the original works.
        self.rehash_legacy_passwords = rehash_legacy_passwords
        self.throttle = throttle
        self.remember_seconds = remember_seconds
        self.token_cache_seconds = token_cache_seconds
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, float]] = {}
        self._token_users: dict[str, tuple[User, float, int | None]] = {}  # user, until, revocation clock
        self._lock = threading.Lock()
        # Each argon2 verification takes 64 MiB and ~100 ms of a core: a few at a time.
        self.verification_slots = threading.BoundedSemaphore(concurrent_verifications)

    def with_password(self, username: str, password: str, client: str = "") -> User:
        if not USERNAME_PATTERN.fullmatch(username) or len(password) > MAX_PASSWORD_LENGTH:
            raise Unauthorized(WRONG_CREDENTIALS)  # cannot be an account: no store, no counter
        fingerprint = hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()
        user = self.store.get_user(username)
        # A password verified a moment ago needs no slot: scripts that send Basic on every call
        # must not queue behind a flood of guesses. A locked pair still takes the slow path.
        if (
            user is not None
            and not user.disabled
            and self._remembered(fingerprint, user.password_hash)
            and not self.throttle.is_locked(username, client)
        ):
            return user
        self.throttle.wait_if_user_is_busy(username)
        if not self.verification_slots.acquire(timeout=VERIFICATION_WAIT_SECONDS):
            raise Busy("Too many sign-ins are being checked; try again in a moment.", retry_after=2)
        try:
            return self._verify(user, username, password, client, fingerprint)
        finally:
            self.verification_slots.release()

    def _verify(self, user: User | None, username: str, password: str, client: str, fingerprint: bytes) -> User:
        reservation = self.throttle.reserve(username, client)  # counted before argon2 runs
        usable = user is not None and not user.disabled
        stored_hash = user.password_hash if user is not None and usable else _dummy_password_hash()
        matches, updated_hash = verify_password(password, stored_hash)
        if user is None or not (usable and matches):
            self.throttle.failed(reservation)
            raise Unauthorized(WRONG_CREDENTIALS)
        if updated_hash and self.rehash_legacy_passwords:
            user = self.store.update_user(username, password_hash=updated_hash)
        self.throttle.succeeded(reservation)
        self._remember(fingerprint, user.password_hash)
        return user

    def remembered_token_user(self, token: str) -> User | None:
        """The user of a token checked within ``token_cache_seconds``; no store access."""
        return self._remembered_token_user(hash_api_token(token))

    def with_token(self, token: str) -> User:
        token_hash = hash_api_token(token)
        user = self._remembered_token_user(token_hash)
        if user is not None:
            return user
        clock = self._revocation_clock()  # read before the store, so a revocation in between drops it
        record = self.store.get_token_by_hash(token_hash)
        if record is None or record.revoked:
            raise Unauthorized("Unknown or revoked API token.")
        if record.is_expired(utcnow()):
            raise Unauthorized("This API token has expired; create a new one.")
        user = self.store.get_user(record.username)
        if user is None or user.disabled:
            raise Unauthorized("Unknown or revoked API token.")
        if self.token_cache_seconds > 0:
            with self._lock:
                if len(self._token_users) > 10_000:
                    self._token_users.clear()
                remembered_for = self.token_cache_seconds
                if record.expires_at is not None:  # never remembered past its expiry
                    remembered_for = min(remembered_for, (record.expires_at - utcnow()).total_seconds())
                self._token_users[token_hash] = (user, time.monotonic() + remembered_for, clock)
        return user

    def _revocation_clock(self) -> int | None:
        return self.revocations.now() if self.revocations is not None else 0

    def _remembered_token_user(self, token_hash: str) -> User | None:
        with self._lock:
            cached = self._token_users.get(token_hash)
        if cached is None or cached[1] <= time.monotonic() or cached[2] is None:
            return None
        return cached[0] if cached[2] == self._revocation_clock() else None

    def forget_tokens_of(self, username: str) -> None:
        """After a revocation or a disabled account: every replica checks the store again."""
        with self._lock:
            self._token_users = {h: e for h, e in self._token_users.items() if e[0].username != username}
        if self.revocations is not None:
            self.revocations.bump()

    def _remembered(self, fingerprint: bytes, password_hash: str) -> bool:
        with self._lock:
            entry = self._verified.get(fingerprint)
        return entry is not None and entry[0] == password_hash and entry[1] > time.monotonic()

    def _remember(self, fingerprint: bytes, password_hash: str) -> None:
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[fingerprint] = (password_hash, time.monotonic() + self.remember_seconds)
