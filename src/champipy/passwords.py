"""Password and API-token hashing.

Passwords: argon2id; bcrypt hashes written by the original system still verify and are
re-hashed with argon2 on the next successful login (unless CHAMPIPY_REHASH_LEGACY_PASSWORDS is
false). API tokens are long random secrets, so a
plain SHA-256 is enough to store them (and lets us look them up by hash).
"""

from __future__ import annotations

import hashlib
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

_hasher = PasswordHash((Argon2Hasher(), BcryptHasher()))

TOKEN_PREFIX = "champi_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored_hash: str) -> tuple[bool, str | None]:
    """(matches, new hash to store when the stored one is outdated, e.g. legacy bcrypt)."""
    try:
        return _hasher.verify_and_update(password, stored_hash)
    except Exception:  # an unreadable stored hash never matches
        return False, None


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
