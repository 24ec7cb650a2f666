"""Accounts through the real CLI (a subprocess, as an admin would run it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from champipy.errors import Unauthorized
from champipy.services.login_throttle import LoginThrottle, throttle_storage
from champipy.services.users import Authenticator
from champipy.settings import Settings
from champipy.store import open_store


def run_cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "champipy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.fixture
def cli_env(tmp_path):
    return {"CHAMPIPY_DATA_DIR": str(tmp_path / "data"), "CHAMPIPY_ADMIN_PASSWORD": ""}


def test_add_admin_from_stdin_stores_only_an_argon2_hash(cli_env, tmp_path):
    password = "s3cret-Passw0rd"
    done = run_cli(cli_env, "users", "add", "bob", "--admin", "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr

    store = open_store(Settings(data_dir=tmp_path / "data").resolved_database_url)
    try:
        bob = store.get_user("bob")
        assert bob.is_admin
        assert bob.password_hash.startswith("$argon2id$")
        assert password not in bob.password_hash
        assert (
            Authenticator(store, LoginThrottle(throttle_storage(""), 5, 60)).with_password("bob", password).username
            == "bob"
        )
    finally:
        store.close()
    raw = (tmp_path / "data" / "champipy.db").read_bytes()
    assert password.encode() not in raw


def test_list_set_role_disable_and_set_password(cli_env, tmp_path):
    assert run_cli(cli_env, "users", "add", "alice", "--password-stdin", stdin="first-password\n").returncode == 0
    listed = run_cli(cli_env, "users", "list")
    assert "alice" in listed.stdout and "admin" not in listed.stdout

    assert run_cli(cli_env, "users", "set-role", "alice", "admin").returncode == 0
    assert (
        run_cli(cli_env, "users", "set-password", "alice", "--password-stdin", stdin="second-password\n").returncode
        == 0
    )
    assert run_cli(cli_env, "users", "disable", "alice").returncode == 0

    store = open_store(Settings(data_dir=tmp_path / "data").resolved_database_url)
    try:
        alice = store.get_user("alice")
        assert alice.is_admin and alice.disabled
        auth = Authenticator(store, LoginThrottle(throttle_storage(""), 5, 60))
        with pytest.raises(Unauthorized):
            auth.with_password("alice", "second-password")
        store.update_user("alice", disabled=False)
        assert auth.with_password("alice", "second-password").username == "alice"
        with pytest.raises(Unauthorized):
            auth.with_password("alice", "first-password")
    finally:
        store.close()


def test_bad_input_gives_clean_errors(cli_env):
    short = run_cli(cli_env, "users", "add", "carol", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    bad_name = run_cli(cli_env, "users", "add", "bad name!", "--password-stdin", stdin="long-enough-pw\n")
    assert bad_name.returncode != 0 and "user name" in bad_name.stderr
    assert "Traceback" not in short.stderr + bad_name.stderr
    unknown = run_cli(cli_env, "users", "set-role", "nobody", "admin")
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr
    run_cli(cli_env, "users", "add", "dave", "--password-stdin", stdin="long-enough-pw\n")
    again = run_cli(cli_env, "users", "add", "dave", "--password-stdin", stdin="long-enough-pw\n")
    assert again.returncode != 0 and "Traceback" not in again.stderr


def test_first_admin_from_environment_only_once(tmp_path):
    env = {"CHAMPIPY_DATA_DIR": str(tmp_path / "data"), "CHAMPIPY_ADMIN_PASSWORD": "bootstrap-pass-1"}
    assert run_cli(env, "users", "list").returncode == 0
    env["CHAMPIPY_ADMIN_PASSWORD"] = "another-pass-2"
    listed = run_cli(env, "users", "list")
    assert listed.stdout.count("admin") >= 1
    store = open_store(Settings(data_dir=tmp_path / "data").resolved_database_url)
    try:
        auth = Authenticator(store, LoginThrottle(throttle_storage(""), 5, 60))
        assert auth.with_password("admin", "bootstrap-pass-1").is_admin
    finally:
        store.close()


def test_legacy_bcrypt_hash_verifies_and_is_rehashed(tmp_path):
    import bcrypt

    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_data_dir()
    store = open_store(settings.resolved_database_url)
    try:
        legacy = bcrypt.hashpw(b"old-system-pw", bcrypt.gensalt()).decode()
        store.add_user("legacy", legacy, ("user",))
        user = Authenticator(store, LoginThrottle(throttle_storage(""), 5, 60)).with_password("legacy", "old-system-pw")
        assert user.password_hash.startswith("$argon2id$")
        assert store.get_user("legacy").password_hash.startswith("$argon2id$")
    finally:
        store.close()


def test_loading_the_command_loads_no_job_queue():
    # Every admin command pays for what `champipy` imports before it runs.
    code = (
        "import sys, champipy.cli; print(sorted(m for m in ('huey', 'redis', 'alembic', 'torch') if m in sys.modules))"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "[]"
