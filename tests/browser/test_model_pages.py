"""The pages with a real trained model: predict, feedback, and Bob's dashboard.

Each test starts the whole app (``start_model_server``) on the small model trained once per
session, with a database and a copy of the MLflow registry of its own.
"""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from champipy.services.monitor import MONITOR
from champipy.store.base import JobState, LabelSource, NewImage, NewPrediction, OpenSetVerdict, SpeciesScore
from support.image_server import ImageServer
from support.live_server import client
from support.registry_edits import register_copy_of

from .helpers import DESKTOP, PHONE, assert_fits_width, screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PERCENT = re.compile(r"^\d{1,3}\.\d%$")


def a_photo(settings, tmp_path: Path) -> Path:
    """A photo of one of the trained species when the fixture says where they are."""
    for folder in (settings.eval_dir, settings.dataset_dir):
        if folder and Path(folder).is_dir():
            photos = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if photos:
                return photos[0]
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (96, 64), (150, 90, 40)).save(path, format="JPEG")
    return path


def labels_of(server) -> list[str]:
    with client(server.url, auth=server.admin.auth) as http:
        status = http.get("/status").json()
        assert status["model"]["loaded"], f"no model serves: {status}"
        prediction = http.post(
            "/predictions", files={"file": ("p.jpg", _jpeg(), "image/jpeg")}, data={"top_k": "1"}
        ).json()
        return [s["species"] for s in http.get(f"/predictions/{prediction['id']}").json()["results"]]


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 48), (30, 120, 60)).save(out, format="JPEG")
    return out.getvalue()


def recognised_photo(server) -> bytes:
    """An eval photo the served model recognises (asked over the API, as an admin): the page
    folds the bars of a rejected photo, and which synthetic image the small model rejects is
    not these tests' business (tests/api/test_open_set_answers.py has that)."""
    with client(server.url, auth=server.admin.auth) as http:
        for path in sorted(Path(server.settings.eval_dir).rglob("*.jpg")):
            answer = http.post("/predictions", files={"file": (path.name, path.read_bytes(), "image/jpeg")})
            if answer.json().get("recognised"):
                return path.read_bytes()
    raise AssertionError("the served model recognises no eval photo")


def wait_for_result(page) -> list[tuple[str, str]]:
    page.wait_for_selector("[data-testid=result]:not([hidden]) #bars li")
    rows = page.locator("#bars li")
    return [
        (rows.nth(i).locator(".species").inner_text(), rows.nth(i).locator(".pct").inner_text())
        for i in range(rows.count())
    ]


def test_upload_a_photo_see_the_species_and_give_feedback(start_model_server, open_page, tmp_path):
    server = start_model_server(uncertain_threshold=0.0)  # never uncertain: the warning must stay hidden
    labels = labels_of(server)
    w = open_page(server.url, DESKTOP)
    page = w.page
    sign_in(page, server.user)
    page.set_input_files("#photo-file", str(a_photo(server.settings, tmp_path)))

    bars = wait_for_result(page)
    assert len(bars) == min(5, len(labels))
    top, top_pct = bars[0]
    assert top in labels and all(PERCENT.match(pct) for _, pct in bars)
    assert page.locator("#photo").get_attribute("src").startswith("blob:")
    assert page.evaluate("document.getElementById('photo').naturalWidth") > 0
    assert page.get_by_test_id("uncertain").is_hidden()
    link = page.get_by_test_id("mo-link")
    assert link.get_attribute("href") == "https://mushroomobserver.org/names?pattern=" + quote(
        top.replace("_", " "), safe=""
    )
    assert top in link.inner_text()

    page.get_by_test_id("confirm").click()
    page.wait_for_selector(f"[data-testid=feedback-status]:has-text('Recorded: {top}.')")
    [mine] = server.store.recent_predictions(1, username=server.user.username)
    assert mine.feedback_species == top and mine.results[0].species == top
    assert server.store.get_image(mine.image_sha256).label_source == LabelSource.CONFIRMED
    page.wait_for_selector("#recent .tag.ok:has-text('confirmed')")

    other = next(s for s in labels if s != top)
    suggestions = page.locator("#species-suggestions option")
    assert other in [suggestions.nth(i).get_attribute("value") for i in range(suggestions.count())]
    page.get_by_test_id("correct-species").fill(other.upper())  # the server keeps the model's spelling
    page.get_by_test_id("correct").click()
    page.wait_for_selector(f"[data-testid=feedback-status]:has-text('Recorded: {other}.')")
    assert server.store.get_prediction(mine.id).feedback_species == other
    page.wait_for_selector(f"#recent .tag.fix:has-text('corrected: {other}')")

    # a species the model does not know, typed as people type it, is stored as a Latin name
    page.get_by_test_id("correct-species").fill("boletus  EDULIS")
    page.get_by_test_id("correct").click()
    page.wait_for_selector("[data-testid=feedback-status]:has-text('Recorded: Boletus edulis.')")
    assert server.store.get_image(mine.image_sha256).label == "Boletus edulis"
    page.get_by_test_id("answer-not-a-mushroom").click()
    page.wait_for_selector("[data-testid=feedback-status]:has-text('Recorded: not a mushroom.')")
    assert server.store.get_prediction(mine.id).feedback_species == "not a mushroom"
    page.wait_for_load_state("networkidle")
    assert_fits_width(page)
    screenshot(page, "user-desktop")
    w.assert_clean()


def test_on_a_phone_drop_a_photo_and_see_the_uncertain_warning(start_model_server, open_page, tmp_path):
    # Every answer below 100% is uncertain, even for a photo the model recognises.
    server = start_model_server(uncertain_threshold=1.0)
    w = open_page(server.url, PHONE)
    page = w.page
    sign_in(page, server.user)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(recognised_photo(server))
    data = page.evaluate_handle(
        """([bytes, name]) => {
             const transfer = new DataTransfer();
             transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "image/jpeg"}));
             return transfer;
           }""",
        [list(photo.read_bytes()), photo.name],
    )
    page.locator("#drop-zone").dispatch_event("drop", {"dataTransfer": data})
    bars = wait_for_result(page)
    assert bars and page.get_by_test_id("uncertain").is_visible()
    assert "Uncertain" in page.get_by_test_id("uncertain").inner_text()
    page.wait_for_selector("#recent li")
    assert page.locator("#recent li").count() == 1
    page.wait_for_load_state("networkidle")
    assert_fits_width(page)
    screenshot(page, "user-phone")
    w.assert_clean()


def test_a_url_prediction_from_the_page(start_model_server, open_page):
    """The URL form, against a local photo site the fetcher is allowed to reach."""
    routes: dict[str, tuple[int, bytes, str]] = {}
    with ImageServer(routes) as photos:
        url = photos.url("/amanita.jpg")
        server = start_model_server(fetch_allow_hosts=photos.host, uncertain_threshold=0.0)
        routes["/amanita.jpg"] = (200, recognised_photo(server), "image/jpeg")
        w = open_page(server.url)
        page = w.page
        sign_in(page, server.user)
        page.fill("#photo-url", url)
        page.get_by_role("button", name="Identify").click()
        assert wait_for_result(page)
        # http: photos are not previewed (the CSP allows https: images only); nothing is logged.
        assert page.locator("#photo").is_hidden()
        assert "https: addresses only" in page.locator("#photo-caption").inner_text()
        [mine] = server.store.recent_predictions(1, username=server.user.username)
        assert mine.source_url == url and photos.hits["/amanita.jpg"] == 1
        w.assert_clean()


# --- the dashboard ---------------------------------------------------------------------------
def _versions(server) -> list[dict]:
    with client(server.url, auth=server.admin.auth) as http:
        answer = http.get("/models")
        assert answer.status_code == 200, answer.text
        return answer.json()


def _add_checks(store, accuracies: list[float]) -> None:
    start = datetime.now(UTC) - timedelta(days=7 * len(accuracies))
    for n, accuracy in enumerate(accuracies):
        store.add_event(
            MONITOR,
            {
                "ok": accuracy >= 0.7,
                "accuracy": accuracy,
                "nb_new_img": 10 * n,
                "model_version": "1",
                "alerts": [] if accuracy >= 0.7 else [f"accuracy {accuracy:.3f} is below the target 0.70"],
                "checked_at": (start + timedelta(days=7 * n)).isoformat(),
            },
        )


def _add_images(store, count: int) -> None:
    for n in range(count):
        out = io.BytesIO()
        Image.new("RGB", (16, 16), (n * 40 % 256, 10, 200)).save(out, format="PNG")
        data = out.getvalue()
        store.add_image(
            NewImage(sha256=hashlib.sha256(data).hexdigest(), data=data, label="x", label_source=LabelSource.IMPORTED)
        )


@pytest.fixture
def dashboard_server(start_model_server):
    """A server with two versions (on its own copy of the registry): production, and a new
    registration of the same model to promote, which swaps the served model for real."""
    server = start_model_server()
    production = next(v for v in _versions(server) if v["serving"])["version"]
    return server, production, register_copy_of(server.settings, production)


def _add_answers(store, verdicts: list[OpenSetVerdict]) -> None:
    for n, verdict in enumerate(verdicts):
        store.add_prediction(
            NewPrediction(
                username="alice",
                image_sha256=hashlib.sha256(bytes([n])).hexdigest(),
                model_name="champipy",
                model_version="1",
                results=(SpeciesScore("Amanita muscaria", 0.6),),
                open_set=verdict,
            )
        )


def test_admin_dashboard_promote_a_version_and_see_it_serving(dashboard_server, open_page):
    server, production, other = dashboard_server
    _add_checks(server.store, [0.62, 0.74, 0.81])
    _add_images(server.store, 3)
    unknown, known = OpenSetVerdict(score=3.0, threshold=1.0), OpenSetVerdict(score=0.2, threshold=1.0)
    _add_answers(server.store, [unknown, known, known])
    w = open_page(server.url, DESKTOP)
    page = w.page
    sign_in(page, server.admin, "/login?next=/admin")
    assert page.url.endswith("/admin")

    page.wait_for_selector(f"[data-testid=production-version]:has-text('v{production}')")
    assert page.get_by_test_id("serving-version").inner_text() == f"serving v{production}"
    page.wait_for_selector("[data-testid=new-images-count]")
    assert page.get_by_test_id("new-images-count").inner_text() == "3"
    assert f"/ {server.settings.target_new_images}" in page.get_by_test_id("new-images").inner_text()
    chart = page.locator("[data-testid=history-chart] svg")
    chart.wait_for()
    assert chart.locator("circle").count() == 3 and chart.locator("circle.low").count() == 1
    assert chart.locator("line.target").count() == 1
    waiting = page.locator("[data-testid=waiting-species] li[data-species='x']")  # _add_images' label
    waiting.wait_for()
    assert waiting.get_attribute("data-state") == "waiting"
    assert f"3 / {server.settings.new_species_min_photos}" in waiting.inner_text()
    signals = page.locator("[data-testid=drift-signals] tr[data-signal]")
    signals.nth(3).wait_for()
    assert signals.count() == 4 and page.locator("#drift-signals tr[data-alert=true]").count() == 0
    rejections = page.locator("[data-testid=rejections-chart] svg")
    rejections.wait_for()
    assert rejections.locator("rect.bar").count() == 1  # every answer is from today
    assert rejections.locator("line.target").count() == 1  # the serving version's expected share
    assert page.get_by_test_id("rejections-summary").inner_text().startswith("1 of 3 answers not recognised")
    assert page.locator(f"#versions tr[data-version='{production}'] [data-testid^=promote]").count() == 0
    page.wait_for_load_state("networkidle")
    screenshot(page, "admin-desktop")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id(f"promote-{other}").click()
    page.wait_for_selector(f"[data-testid=production-version]:has-text('v{other}')")
    page.wait_for_selector(f"[data-testid=serving-version]:has-text('serving v{other}')")
    with client(server.url) as http:
        assert http.get("/status").json()["model"]["version"] == other
    assert page.locator(f"#versions tr[data-version='{production}'] [data-testid=promote-{production}]").count() == 1
    w.assert_clean()


def test_jobs_show_live_progress_and_the_finetune_form_starts_one(start_model_server, open_page):
    server = start_model_server()
    running = server.store.add_job(
        "finetune", {"epochs": 5, "variables": 2, "promote_if_better": False}, server.admin.username
    )
    server.store.update_job(running.id, state=JobState.RUNNING, progress={"stage": "training", "epoch": 2, "epochs": 5})
    w = open_page(server.url, PHONE)
    page = w.page
    sign_in(page, server.admin, "/login?next=/admin")
    job = page.locator(f"#jobs li[data-job='{running.id}']")
    job.wait_for()
    assert job.get_attribute("data-state") == "running"
    assert job.locator("[role=progressbar]").get_attribute("aria-valuenow") == "40"
    page.wait_for_selector("[data-testid=history-chart] p, [data-testid=history-chart] svg")
    page.wait_for_load_state("networkidle")
    assert_fits_width(page)
    screenshot(page, "admin-phone")

    server.store.update_job(running.id, progress={"stage": "training", "epoch": 4, "epochs": 5})
    page.wait_for_selector(f"#jobs li[data-job='{running.id}'] [role=progressbar][aria-valuenow='80']")
    server.store.update_job(running.id, state=JobState.SUCCEEDED, result={"version": "99", "promoted": False})
    page.wait_for_selector(f"#jobs li[data-job='{running.id}'][data-state=succeeded]")
    assert "v99" in job.inner_text()

    form = page.locator("#finetune-form")
    form.locator("input[name=epochs]").fill("1")
    form.locator("input[name=variables]").fill("0")
    page.get_by_test_id("finetune-submit").click()
    page.wait_for_selector("#finetune-status:has-text('queued')")
    [submitted] = [j for j in server.store.list_jobs(limit=5) if j.id != running.id]
    assert submitted.kind == "finetune" and submitted.params["epochs"] == 1 and submitted.params["variables"] == 0
    page.wait_for_selector(f"#jobs li[data-job='{submitted.id}']")

    form.locator("input[name=promote_if_better]").check()
    page.get_by_test_id("retrain-submit").click()
    page.wait_for_selector("#finetune-status:has-text('(retrain) queued')")
    [retrain] = [j for j in server.store.list_jobs(limit=5) if j.kind == "retrain"]
    assert retrain.params == {"promote_if_better": True}
    page.wait_for_selector(f"#jobs li[data-job='{retrain.id}']")
    w.assert_clean()


# --- observations ------------------------------------------------------------------------------
def test_an_mo_observation_from_the_bookmarklet_and_several_dropped_photos(start_model_server, open_page, tmp_path):
    """The bookmarklet opens the page with ?url=<observation>: the combined answer, the MO
    consensus and each photo's bars; then two photos chosen at once make an observation."""
    from data.mo_server import FakeMushroomObserver

    with FakeMushroomObserver() as mo:
        server = start_model_server(fetch_allow_hosts=mo.host, mo_api_url=mo.base, mo_request_interval=0.0)
        folder = sorted(p for p in Path(server.settings.eval_dir).iterdir() if p.is_dir())[0]
        photos = sorted(folder.iterdir())[:3]
        for i, path in enumerate(photos):
            mo.add_image(2000 + i, path.read_bytes(), 77)
        mo.add_observation(77, [2000, 2001, 2002], consensus=folder.name)
        w = open_page(server.url)
        page = w.page
        sign_in(page, server.user)
        assert page.get_by_test_id("bookmarklet").get_attribute("href").startswith("javascript:")

        page.goto(f"/?url={quote(mo.base + '/obs/77', safe='')}")
        page.wait_for_selector("[data-testid=observation-result]:not([hidden]) #observation-bars li")
        assert page.locator("[data-testid=observation-photo]").count() == 3
        assert page.locator("#observation-photos .bars li").count() == 9  # 3 species per photo
        consensus = page.get_by_test_id("observation-consensus").inner_text()
        assert folder.name in consensus and page.get_by_test_id("consensus-tag").inner_text().startswith("ChampiPy")
        assert page.get_by_test_id("result").is_hidden()
        [stored] = server.store.recent_observations(1, username=server.user.username)
        assert stored.mo_observation_id == 77 and len(stored.prediction_ids) == 3

        page.set_input_files("#photo-file", [str(photos[0]), str(photos[1])])
        page.wait_for_selector("#observation-model:has-text('2 photo(s) combined')")
        assert page.locator("[data-testid=observation-photo]").count() == 2
        assert page.get_by_test_id("observation-consensus").is_hidden()
        page.wait_for_load_state("networkidle")
        assert_fits_width(page)
        screenshot(page, "observation-desktop")
        w.assert_clean()
