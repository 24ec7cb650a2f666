"""API tokens of the signed-in user."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ...app_deps import ContainerDep, StoreDep
from ...errors import Forbidden, NotFound
from ...services import users
from ..deps import CurrentUser
from ..errors import signed_in
from ..schemas import IssuedTokenOut, TokenIn, TokenOut

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=signed_in())


@router.post("", status_code=201, response_model=IssuedTokenOut, summary="Create an API token (shown once)")
def create_token(body: TokenIn, request: Request, user: CurrentUser, store: StoreDep) -> IssuedTokenOut:
    # A token made with a token would outlive its parent's revocation: a stolen token must
    # not be able to mint itself a successor.
    if request.headers.get("authorization", "").partition(" ")[0].lower() == "bearer":
        raise Forbidden("Create an API token with your password or a signed-in session, not with another token.")
    issued = users.create_token(store, user.username, body.name, expires_in_days=body.expires_in_days)
    return IssuedTokenOut(token=issued.token, **TokenOut.from_record(issued.record).model_dump())


@router.get("", response_model=list[TokenOut], summary="List my API tokens")
def list_tokens(user: CurrentUser, store: StoreDep) -> list[TokenOut]:
    return [TokenOut.from_record(t) for t in store.list_tokens(user.username)]


@router.delete("/{token_id}", status_code=204, responses=signed_in(NotFound), summary="Revoke one of my API tokens")
def revoke_token(token_id: str, user: CurrentUser, container: ContainerDep) -> Response:
    users.revoke_token(container.store, user.username, token_id)
    container.authenticator.forget_tokens_of(user.username)
    return Response(status_code=204)
