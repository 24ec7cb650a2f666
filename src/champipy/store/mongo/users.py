"""Users (the original's ``users`` collection) and API tokens (``api_tokens``) in MongoDB."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from ..ports import UserRepository
from ..records import ApiToken, User
from ..rules import no_user, user_changes
from .client import CREATED_NEWEST_FIRST, Document, MongoBase, as_utc, now, object_id

# The original's field names for the User fields that differ.
_USER_FIELDS = {"password_hash": "hashed_password", "roles": "access"}


class MongoUsers(MongoBase, UserRepository):
    def add_user(self, username: str, password_hash: str, roles: tuple[str, ...]) -> User:
        doc: Document = {
            "username": username,
            "hashed_password": password_hash,
            "access": list(roles),
            "disabled": False,
            "created_at": now(),
        }
        with self._guard(f"user {username!r} already exists"):
            self._users.insert_one(doc)
        return _user(doc)

    def get_user(self, username: str) -> User | None:
        with self._guard():
            doc = self._users.find_one({"username": username})
        return _user(doc) if doc else None

    def list_users(self) -> list[User]:
        with self._guard():
            return [_user(doc) for doc in self._users.find().sort("username", ASCENDING)]

    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        roles: tuple[str, ...] | None = None,
        disabled: bool | None = None,
    ) -> User:
        changes = {
            _USER_FIELDS.get(name, name): list(value) if name == "roles" else value
            for name, value in user_changes(password_hash=password_hash, roles=roles, disabled=disabled).items()
        }
        with self._guard():
            if changes:
                doc = self._users.find_one_and_update(
                    {"username": username},
                    {"$set": changes},
                    return_document=ReturnDocument.AFTER,
                )
            else:
                doc = self._users.find_one({"username": username})
        if doc is None:
            raise no_user(username)
        return _user(doc)

    # --- API tokens ------------------------------------------------------------------------
    def add_token(self, username: str, name: str, token_hash: str, expires_at: datetime | None = None) -> ApiToken:
        doc: Document = {
            "username": username,
            "name": name,
            "token_hash": token_hash,
            "created_at": now(),
            "revoked": False,
            "expires_at": expires_at,
        }
        with self._guard("this token already exists"):
            self._tokens.insert_one(doc)
        return _token(doc)

    def get_token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._guard():
            doc = self._tokens.find_one({"token_hash": token_hash})
        return _token(doc) if doc else None

    def list_tokens(self, username: str) -> list[ApiToken]:
        with self._guard():
            docs = self._tokens.find({"username": username}).sort(CREATED_NEWEST_FIRST)
            return [_token(doc) for doc in docs]

    def revoke_token(self, username: str, token_id: str) -> bool:
        oid = object_id(token_id)
        if oid is None:
            return False
        with self._guard():
            result = self._tokens.update_one({"_id": oid, "username": username}, {"$set": {"revoked": True}})
        return result.matched_count > 0


def _text(value: Any) -> str:
    # bcrypt.hashpw returns bytes, which the original may have stored as BSON binary.
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _user(doc: Mapping[str, Any]) -> User:
    access = doc.get("access") or ()
    return User(
        username=doc["username"],
        password_hash=_text(doc.get("hashed_password")),
        roles=(access,) if isinstance(access, str) else tuple(access),
        disabled=bool(doc.get("disabled", False)),
        created_at=as_utc(doc.get("created_at"), doc.get("_id")),
    )


def _token(doc: Mapping[str, Any]) -> ApiToken:
    return ApiToken(
        id=str(doc["_id"]),
        username=doc["username"],
        name=doc["name"],
        token_hash=doc["token_hash"],
        created_at=as_utc(doc["created_at"]),
        revoked=bool(doc.get("revoked", False)),
        expires_at=as_utc(doc["expires_at"]) if doc.get("expires_at") else None,
    )
