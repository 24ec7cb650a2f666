"""Test accounts: random names, known passwords, stored as the real service stores them.

Hashing a password with argon2 takes ~0.2 s by design, and most tests make two accounts, so
the passwords come from a small pool hashed once per session: consecutive accounts get
different passwords (an account's password never opens the next one), each stored hash is
a real argon2id hash of its password, and names stay unique.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from champipy.passwords import hash_password
from champipy.services.users import roles_for, validate_password, validate_username
from champipy.store.base import Store

PASSWORD_POOL = 16

_lock = threading.Lock()
_hashed: list[tuple[str, str]] = []  # (password, its argon2 hash), made on first use
_next = 0


@dataclass(frozen=True)
class Account:
    username: str
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)


def _pooled_password() -> tuple[str, str]:
    global _next
    with _lock:
        index, _next = _next % PASSWORD_POOL, _next + 1
        if index == len(_hashed):
            password = secrets.token_urlsafe(12)
            _hashed.append((password, hash_password(password)))
        return _hashed[index]


def make_account(store: Store, *, admin: bool = False, prefix: str = "user") -> Account:
    """What ``champipy.services.users.add_user`` does, with a pooled, already hashed password."""
    password, password_hash = _pooled_password()
    account = Account(f"{prefix}-{secrets.token_hex(4)}", password)
    validate_username(account.username)
    validate_password(account.password)
    store.add_user(account.username, password_hash, roles_for(admin))
    return account
