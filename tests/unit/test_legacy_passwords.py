"""A bcrypt hash written by the original system: it verifies, and is re-hashed only when allowed."""

from __future__ import annotations

import pytest
from pwdlib.hashers.bcrypt import BcryptHasher

from champipy.services.login_throttle import LoginThrottle, throttle_storage
from champipy.services.users import Authenticator
from champipy.store import open_store
from champipy.store.base import Role

PASSWORD = "the-original's-password"


@pytest.fixture
def store_with_an_original_user():
    store = open_store("memory://")
    store.add_user("bob", BcryptHasher().hash(PASSWORD), (Role.USER,))
    yield store
    store.close()


def authenticator(store, rehash: bool) -> Authenticator:
    return Authenticator(store, LoginThrottle(throttle_storage(""), 5, 60), rehash_legacy_passwords=rehash)


def test_an_original_bcrypt_hash_becomes_argon2_at_sign_in(store_with_an_original_user):
    store = store_with_an_original_user
    assert authenticator(store, rehash=True).with_password("bob", PASSWORD).username == "bob"
    assert store.get_user("bob").password_hash.startswith("$argon2id$")


def test_with_rehashing_off_the_bcrypt_hash_stays_for_a_rollback(store_with_an_original_user):
    store = store_with_an_original_user
    before = store.get_user("bob").password_hash
    assert before.startswith("$2b$")
    assert authenticator(store, rehash=False).with_password("bob", PASSWORD).username == "bob"
    assert store.get_user("bob").password_hash == before
