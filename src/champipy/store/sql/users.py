"""Users and API tokens in SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from ..ports import UserRepository
from ..records import ApiToken, User, utcnow
from ..rules import no_user, user_changes
from ..sql_models import ApiTokenRow, UserRow
from .engine import SqlBase, new_id, rowcount


class SqlUsers(SqlBase, UserRepository):
    def add_user(self, username: str, password_hash: str, roles: tuple[str, ...]) -> User:
        row = UserRow(
            username=username,
            password_hash=password_hash,
            roles=list(roles),
            disabled=False,
            created_at=utcnow(),
        )
        with self._writing(f"user {username!r} already exists") as session:
            session.add(row)
        return _user(row)

    def get_user(self, username: str) -> User | None:
        with self._reading() as session:
            row = session.get(UserRow, username)
            return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self._reading() as session:
            rows = session.scalars(select(UserRow).order_by(UserRow.username))
            return [_user(row) for row in rows]

    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        roles: tuple[str, ...] | None = None,
        disabled: bool | None = None,
    ) -> User:
        changes = user_changes(password_hash=password_hash, roles=roles, disabled=disabled)
        with self._writing() as session:
            row = session.get(UserRow, username)
            if row is None:
                raise no_user(username)
            for name, value in changes.items():
                setattr(row, name, list(value) if name == "roles" else value)
        return _user(row)

    # --- API tokens ------------------------------------------------------------------------
    def add_token(self, username: str, name: str, token_hash: str, expires_at: datetime | None = None) -> ApiToken:
        row = ApiTokenRow(
            id=new_id(),
            username=username,
            name=name,
            token_hash=token_hash,
            created_at=utcnow(),
            revoked=False,
            expires_at=expires_at,
        )
        with self._writing("this token already exists") as session:
            session.add(row)
        return _token(row)

    def get_token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._reading() as session:
            row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash))
            return _token(row) if row else None

    def list_tokens(self, username: str) -> list[ApiToken]:
        with self._reading() as session:
            rows = session.scalars(
                select(ApiTokenRow)
                .where(ApiTokenRow.username == username)
                .order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id)
            )
            return [_token(row) for row in rows]

    def revoke_token(self, username: str, token_id: str) -> bool:
        with self._writing() as session:
            result = session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id, ApiTokenRow.username == username)
                .values(revoked=True)
            )
            return rowcount(result) > 0


def _user(row: UserRow) -> User:
    return User(
        username=row.username,
        password_hash=row.password_hash,
        roles=tuple(row.roles),
        disabled=row.disabled,
        created_at=row.created_at,
    )


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        username=row.username,
        name=row.name,
        token_hash=row.token_hash,
        created_at=row.created_at,
        revoked=row.revoked,
        expires_at=row.expires_at,
    )
