"""``champipy users …``: accounts and roles, and API tokens for scripts."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from . import app, open_container

users_app = typer.Typer(no_args_is_help=True, help="Manage accounts, roles and API tokens.")
app.add_typer(users_app, name="users")
console = Console()


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def add(
    username: str,
    admin: bool = typer.Option(False, "--admin", help="Give the admin role."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create an account (the password is prompted, or read from stdin)."""
    from ..services.users import add_user

    password = _read_password(password_stdin)
    with open_container() as container:
        user = add_user(container.store, username, password, admin=admin)
    console.print(f"created [bold]{user.username}[/] with roles {', '.join(user.roles)}")


@users_app.command("list")
def list_users() -> None:
    """List accounts and their roles."""
    with open_container() as container:
        table = Table("user", "roles", "disabled", "created")
        for user in container.store.list_users():
            table.add_row(
                user.username,
                ", ".join(user.roles),
                "yes" if user.disabled else "",
                f"{user.created_at:%Y-%m-%d %H:%M}",
            )
    console.print(table)


@users_app.command("set-password")
def set_password(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Change an account's password."""
    from ..services.users import set_password as set_pw

    password = _read_password(password_stdin)
    with open_container() as container:
        set_pw(container.store, username, password)
    console.print(f"password changed for [bold]{username}[/]")


@users_app.command("set-role")
def set_role(username: str, role: str = typer.Argument(..., help="user or admin")) -> None:
    """Make an account an admin, or a plain user."""
    from ..services.users import set_admin

    if role not in ("user", "admin"):
        raise typer.BadParameter("role is 'user' or 'admin'")
    with open_container() as container:
        user = set_admin(container.store, username, role == "admin")
    console.print(f"[bold]{user.username}[/] now has roles {', '.join(user.roles)}")


@users_app.command("disable")
def disable(username: str, enable: bool = typer.Option(False, "--enable", help="Re-enable instead.")) -> None:
    """Disable (or re-enable) an account; its tokens stop working too."""
    from ..services.users import set_disabled

    with open_container() as container:
        set_disabled(container.store, username, not enable)
        container.authenticator.forget_tokens_of(username)  # every replica checks the store again
    console.print(f"[bold]{username}[/] {'enabled' if enable else 'disabled'}")


@users_app.command("token")
def token(username: str, name: str = typer.Option("cli", help="A label for the token.")) -> None:
    """Create an API token for an account and print it (shown only once)."""
    from ..services.users import create_token

    with open_container() as container:
        if container.store.get_user(username) is None:
            raise typer.BadParameter(f"no user {username!r}")
        issued = create_token(container.store, username, name)
    print(issued.token)
