"""``make audit``: a bundle of hostile inputs replayed against ``champipy serve``.

Every input must be refused cleanly: a 4xx with the error shape ``{"error", "detail"}`` (or,
for a remote that misbehaves, 502/504 ``remote_*``: the gateway's answer for the remote's fault,
counted apart), never another 5xx, a hang or a dead server. Afterwards the server must still
answer /status and predict a real photo, and a user locked out from one address still signs in from another. Prints
``N tried, N refused cleanly, 0 5xx, server healthy, peak RSS X MiB`` (the server process's
VmHWM). Only loopback addresses are contacted.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from champipy.store import open_store
from support.accounts import make_account
from support.drip_server import DripServer
from support.image_server import ImageServer
from support.live_server import client

from .serving import dataset_photos, serve_process_and_pid

pytestmark = pytest.mark.audit

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ops"


def image(fmt: str, size=(300, 200), mode="RGB", **params) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, fmt, **params)
    return buffer.getvalue()


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def hostile_uploads(photo: bytes) -> list[tuple[str, bytes]]:
    gif_screen = bytearray(image("GIF", (10, 10), "L"))
    gif_screen[6:10] = (65535).to_bytes(2, "little") * 2  # logical screen 65535x65535
    return [
        ("1x100000 png", image("PNG", (1, 100_000), "L", optimize=True)),
        ("100000x1 png", image("PNG", (100_000, 1), "L", optimize=True)),
        ("1x40000000 png", image("PNG", (1, 4_000_000), "L", optimize=True)),
        ("9000x9000 png", image("PNG", (9000, 9000), "L")),
        ("8x8 png", image("PNG", (8, 8))),
        ("gif logical screen 65535^2", bytes(gif_screen)),
        ("tiff", image("TIFF")),
        ("jpeg2000", image("JPEG2000")),
        ("ppm", image("PPM")),
        ("tga", image("TGA")),
        ("ico", image("ICO", (64, 64))),
        ("bmp", image("BMP")),
        ("pcx", image("PCX")),
        ("sgi", image("SGI")),
        ("pdf", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj"),
        ("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"/>'),
        ("html", b"<html><script>alert(1)</script></html>"),
        ("empty", b""),
        ("truncated jpeg", photo[: len(photo) // 3]),
        ("jpeg header only", photo[:200]),
        ("random bytes", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()),
        ("zip", b"PK\x03\x04" + b"\x00" * 100),
    ]


def bundle(photo: bytes, images: ImageServer, drip: DripServer, api_port: int) -> list[tuple[str, dict]]:
    """(name, httpx request arguments) of each hostile input; all sent with a valid token."""
    items: list[tuple[str, dict]] = []
    for name, data in hostile_uploads(photo):
        items.append(
            (
                f"upload {name}",
                {"method": "POST", "url": "/predictions", "files": {"file": ("x.jpg", data, "image/jpeg")}},
            )
        )
    for top_k in ("0", "-1", "11", "1e9", "three", ""):
        items.append(
            (
                f"top_k={top_k!r}",
                {
                    "method": "POST",
                    "url": "/predictions",
                    "files": {"file": ("x.jpg", photo, "image/jpeg")},
                    "data": {"top_k": top_k},
                },
            )
        )
    items += [
        (
            "multipart without file",
            {
                "method": "POST",
                "url": "/predictions",
                "data": {"top_k": "3"},
                "files": {"other": ("a.txt", b"x", "text/plain")},
            },
        ),
        (
            "xml body",
            {
                "method": "POST",
                "url": "/predictions",
                "content": b"<url/>",
                "headers": {"content-type": "application/xml"},
            },
        ),
        (
            "invalid json",
            {
                "method": "POST",
                "url": "/predictions",
                "content": b"{not json",
                "headers": {"content-type": "application/json"},
            },
        ),
        ("json url not a string", {"method": "POST", "url": "/predictions", "json": {"url": ["a"], "top_k": 1}}),
        ("json nested mongo operator", {"method": "POST", "url": "/predictions", "json": {"url": {"$ne": None}}}),
        (
            "huge upload",
            {
                "method": "POST",
                "url": "/predictions",
                "files": {"file": ("x.jpg", b"\xff" * (16 * 1024 * 1024), "image/jpeg")},
            },
        ),
    ]
    urls = [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x.jpg",
        "gopher://127.0.0.1:70/",
        "not a url",
        "http://",
        f"http://127.0.0.1:{api_port}/status",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.jpg",
        "http://0x7f000001/x.jpg",
        "http://2130706433/x.jpg",
        "http://0.0.0.0/x.jpg",
        "http://user:pass@127.0.0.1/x.jpg",
        "http://10.0.0.1/x.jpg",
        "http://192.168.1.1/x.jpg",
        "http://[::ffff:127.0.0.1]/x.jpg",
        "http://localhost./x.jpg",
        "https://" + "a" * 5000 + ".jpg",
        images.url("/missing.jpg"),
        images.url("/text.jpg"),
        images.url("/thin.png"),
    ]
    for url in urls:
        items.append((f"url {url[:60]}", {"method": "GET", "url": "/predictions", "params": {"file": url}}))
    items += [
        ("slow drip url", {"method": "GET", "url": "/predictions", "params": {"file": drip.url()}}),
        ("unknown prediction", {"method": "GET", "url": "/predictions/000000000000000000000000"}),
        ("path traversal id", {"method": "GET", "url": "/predictions/..%2F..%2Fetc%2Fpasswd"}),
        ("sql in id", {"method": "GET", "url": "/predictions/1' OR '1'='1"}),
        (
            "feedback unknown prediction",
            {"method": "POST", "url": "/predictions/nope/feedback", "json": {"species": "Amanita muscaria"}},
        ),
        ("feedback bad body", {"method": "POST", "url": "/predictions/nope/feedback", "json": {"species": 3}}),
        ("admin route as user: accuracy", {"method": "GET", "url": "/accuracy"}),
        ("admin route as user: finetune", {"method": "POST", "url": "/finetune"}),
        ("admin route as user: promote", {"method": "POST", "url": "/models/1/promote"}),
        ("admin route as user: monitor", {"method": "POST", "url": "/monitor"}),
        ("revoke someone's token", {"method": "DELETE", "url": "/tokens/000000000000000000000000"}),
        ("token with a 10k name", {"method": "POST", "url": "/tokens", "json": {"name": "x" * 10_000}}),
        ("method not allowed", {"method": "PUT", "url": "/status"}),
        ("unknown route", {"method": "GET", "url": "/../../etc/passwd"}),
    ]
    return items


def unauthenticated(user_name: str) -> list[tuple[str, dict]]:
    items = [
        ("no credentials", {"method": "GET", "url": "/user"}),
        ("basic not base64", {"method": "GET", "url": "/user", "headers": {"Authorization": "Basic %%%"}}),
        ("basic without colon", {"method": "GET", "url": "/user", "headers": basic(b"nocolon")}),
        ("basic latin-1 bytes", {"method": "GET", "url": "/user", "headers": basic(b"\xe9t\xe9:\xff\xfe")}),
        ("basic 10k user name", {"method": "GET", "url": "/user", "headers": basic(b"u" * 10_000 + b":pw")}),
        ("basic sql user name", {"method": "GET", "url": "/user", "headers": basic(b"admin' OR 1=1--:x")}),
        ("basic mongo user name", {"method": "GET", "url": "/user", "headers": basic(b'{"$ne": null}:x')}),
        ("bearer garbage", {"method": "GET", "url": "/user", "headers": {"Authorization": "Bearer ../../{}'\"<x>"}}),
        (
            "bearer unknown",
            {"method": "GET", "url": "/user", "headers": {"Authorization": "Bearer champi_" + "A" * 43}},
        ),
        ("unknown scheme", {"method": "GET", "url": "/user", "headers": {"Authorization": "Digest x"}}),
        ("cookie forged", {"method": "GET", "url": "/user", "headers": {"Cookie": "champipy_session=forged"}}),
    ]
    for i in range(8):  # guesses from one address: five 401, then 429
        items.append((f"password guess {i}", {"method": "GET", "url": "/user", "auth": (user_name, f"guess-{i}")}))
    return items


def peak_rss_mib(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_hostile_inputs_are_refused_cleanly(tmp_path, trained_registry):
    probe = trained_registry.settings_for(tmp_path / "probe")
    photo = dataset_photos(probe, per_species=1)[0][1]
    routes = {
        "/photo.jpg": (200, photo, "image/jpeg"),
        "/text.jpg": (200, b"<html>", "image/jpeg"),
        "/thin.png": (200, image("PNG", (1, 100_000), "L", optimize=True), "image/png"),
    }
    with ImageServer(routes) as images, DripServer(interval=1.0) as drip:
        settings = trained_registry.settings_for(
            tmp_path / "data", fetch_allow_hosts=f"{images.host},{drip.host}", fetch_read_timeout=3.0
        )
        store = open_store(settings.resolved_database_url)
        user, victim = make_account(store), make_account(store, prefix="victim")
        with serve_process_and_pid(settings, tmp_path / "serve.log") as (base_url, pid):
            api_port = int(base_url.rsplit(":", 1)[1])
            with client(base_url, auth=user.auth) as c:
                token = c.post("/tokens", json={"name": "audit"}).json()["token"]
            outcomes = []
            with httpx.Client(
                base_url=base_url, trust_env=False, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2")
            ) as c:
                for name, request in bundle(photo, images, drip, api_port):
                    headers = {"Authorization": f"Bearer {token}"} | request.pop("headers", {})
                    outcomes.append((name, c.request(headers=headers, **request)))
                for name, request in unauthenticated(victim.username):
                    outcomes.append((name, c.request(**request)))
            with client(base_url) as c:
                healthy = c.get("/status").status_code == 200
            with client(base_url, auth=victim.auth) as c:  # from 127.0.0.1: not the locked address
                healthy &= c.get("/user").status_code == 200
                predicted = c.post("/predictions", files={"file": ("p.jpg", photo, "image/jpeg")})
                healthy &= predicted.status_code == 200
            peak = peak_rss_mib(pid)
        store.close()

    def error_code(answer: httpx.Response) -> str | None:
        try:
            body = answer.json()
        except json.JSONDecodeError:
            return None
        return body["error"] if isinstance(body, dict) and {"error", "detail"} <= set(body) else None

    def remote_fault(answer: httpx.Response) -> bool:
        return answer.status_code in (502, 504) and (error_code(answer) or "").startswith("remote_")

    def clean(answer: httpx.Response) -> bool:
        return error_code(answer) is not None and (400 <= answer.status_code < 500 or remote_fault(answer))

    refused = [name for name, answer in outcomes if clean(answer)]
    gateway = [name for name, answer in outcomes if remote_fault(answer)]
    server_errors = [
        (name, answer.status_code)
        for name, answer in outcomes
        if answer.status_code >= 500 and not remote_fault(answer)
    ]
    report = {
        "tried": len(outcomes),
        "refused_cleanly": len(refused),
        "server_errors": server_errors,
        "healthy": healthy,
        "peak_rss_mib": round(peak, 1),
        "statuses": dict(Counter(answer.status_code for _, answer in outcomes)),
        "not_clean": [(n, a.status_code, a.text[:200]) for n, a in outcomes if not clean(a)],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "audit.json").write_text(json.dumps(report, indent=2))
    print(
        f"\nAUDIT: {len(outcomes)} tried, {len(refused)} refused cleanly ({len(gateway)} of them 502/504 "
        f"for the remote's fault), {len(server_errors)} 5xx, "
        f"server {'healthy' if healthy else 'NOT healthy'}, peak RSS {peak:.0f} MiB"
    )
    assert not server_errors, server_errors
    assert len(refused) == len(outcomes), report["not_clean"]
    assert healthy
