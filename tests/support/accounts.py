"""Test accounts: random names, known passwords, created through the real service."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from champipy.services.users import add_user
from champipy.store.base import Store


@dataclass(frozen=True)
class Account:
    username: str
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)


def make_account(store: Store, *, admin: bool = False, prefix: str = "user") -> Account:
    account = Account(f"{prefix}-{secrets.token_hex(4)}", secrets.token_urlsafe(12))
    add_user(store, account.username, account.password, admin=admin)
    return account
