"""Bob's routes over HTTP: access levels, accuracy, new images, fine-tune jobs, promotion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.services.dataset_import import import_folder
from champipy.store import open_store
from champipy.store.base import LabelSource, NewImage
from support.accounts import make_account
from support.jobs import wait_for_job
from support.live_server import client, live_server
from support.trained_model import PER_SPECIES

ADMIN_ROUTES = [
    ("GET", "/accuracy", None),
    ("GET", "/past_pred_acc?nb_last_preds=5", None),
    ("GET", "/nb_new_img?model_name=champipy&stage=Production", None),
    ("GET", "/jobs", None),
    ("GET", "/models", None),
    ("GET", "/monitor/history", None),
    ("GET", "/monitor/open-set?days=7", None),
    ("POST", "/monitor", None),
    ("GET", "/species", None),
]


@pytest.fixture
def admin_api(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path / "data")
    store = open_store(settings.resolved_database_url)
    user, admin = make_account(store), make_account(store, admin=True, prefix="admin")
    with live_server(create_app(settings)) as base_url:
        yield {
            "url": base_url,
            "user": user,
            "admin": admin,
            "store": store,
            "settings": settings,
            "version": trained_registry.version,
        }
    store.close()


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES)
def test_admin_routes_access_matrix(admin_api, method, path, body):
    for who, expected in (("anonymous", 401), ("user", 403), ("admin", 200)):
        auth = None if who == "anonymous" else admin_api[who].auth
        with client(admin_api["url"], auth=auth) as c:
            answer = c.request(method, path, json=body)
        assert answer.status_code == expected, (who, answer.text)


def test_finetune_and_promote_need_admin(admin_api):
    for who, expected in (("anonymous", 401), ("user", 403)):
        auth = None if who == "anonymous" else admin_api[who].auth
        with client(admin_api["url"], auth=auth) as c:
            assert c.post("/finetune?epochs=1").status_code == expected
            assert c.get("/finetune?epochs=1").status_code == expected
            assert c.post("/retrain").status_code == expected
            assert c.post(f"/models/{admin_api['version']}/promote").status_code == expected
            assert c.get("/jobs/whatever").status_code == expected


def test_accuracy_on_the_eval_set_is_computed_once_per_version(admin_api):
    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        first = c.get("/accuracy").json()
        second = c.get("/accuracy").json()
    assert first["n"] == sum(1 for p in Path(admin_api["settings"].eval_dir).rglob("*") if p.is_file())
    assert 0.5 < first["top1"] <= first["top3"] <= 1.0, "a small real model is well above chance (0.1)"
    assert set(first["per_species"]) == {p.name for p in Path(admin_api["settings"].eval_dir).iterdir()}
    assert first["model_version"] == admin_api["version"]
    assert first["cached"] is False and second["cached"] is True
    assert second["top1"] == first["top1"]


def test_past_pred_acc_reports_confidence_and_expert_accuracy(admin_api):
    eval_dir = Path(admin_api["settings"].eval_dir)
    photos = [sorted((eval_dir / s).iterdir())[0] for s in ("Amanita muscaria", "Coprinus comatus")]
    with client(admin_api["url"], auth=admin_api["user"].auth) as c:
        ids = []
        for photo in photos:
            ids.append(c.post("/predictions", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}).json())
        top = ids[0]["results"][0]["species"]
        c.post(f"/predictions/{ids[0]['id']}/feedback", json={"species": top})
        wrong = next(s for s in ("Lycogala epidendrum", "Mycena haematopus") if s != ids[1]["results"][0]["species"])
        c.post(f"/predictions/{ids[1]['id']}/feedback", json={"species": wrong})
    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        report = c.get("/past_pred_acc", params={"nb_last_preds": 2}).json()
        bad = c.get("/past_pred_acc", params={"nb_last_preds": "many"})
    expected_mean = sum(p["results"][0]["probability"] for p in ids) / 2
    assert report["n"] == 2 and report["mean_probability"] == pytest.approx(expected_mean)
    assert report["n_feedback"] == 2 and report["feedback_accuracy"] == 0.5
    assert bad.status_code == 422


def test_nb_new_img_counts_images_since_promotion(admin_api):
    store, settings = admin_api["store"], admin_api["settings"]
    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        c.post(f"/models/{admin_api['version']}/promote")
        before = c.get("/nb_new_img", params={"model_name": "champipy", "stage": "Production"}).json()
        subset = Path(settings.data_dir) / "few"
        shutil.copytree(Path(settings.eval_dir) / "Aleuria aurantia", subset / "Aleuria aurantia")
        summary = import_folder(store, subset, settings)
        after = c.get("/nb_new_img", params={"model_name": "champipy", "stage": "production"}).json()
        unknown = c.get("/nb_new_img", params={"model_name": "other-model", "stage": "production"})
        no_alias = c.get("/nb_new_img", params={"model_name": "champipy", "stage": "staging"})
    assert before["version"] == admin_api["version"] and before["nb_new_img"] == 0
    assert after["nb_new_img"] == summary.added > 0
    assert unknown.status_code == 404 and no_alias.status_code == 404


def test_promote_unknown_version_and_unknown_job_are_404(admin_api):
    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        assert c.post("/models/999/promote").status_code == 404
        assert c.get("/jobs/no-such-job").status_code == 404


@pytest.mark.parametrize("query", ["epochs=0", "epochs=abc", "variables=-1", "variables=x", "epochs=1000"])
def test_finetune_rejects_bad_parameters(admin_api, query):
    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        answer = c.post(f"/finetune?{query}")
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_input"


def test_finetune_without_stored_images_fails_with_a_clear_error(admin_api):
    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        submitted = c.post("/finetune", params={"epochs": 1})
        assert submitted.status_code == 202
        job = wait_for_job(c, submitted.json()["id"], seconds=60)
    assert job["state"] == "failed" and "import" in job["error"]


@pytest.mark.slow
def test_finetune_job_end_to_end_registered_promoted_served(admin_api):
    store, settings = admin_api["store"], admin_api["settings"]
    assert import_subset(settings, store, per_species=4) == 40  # photos the base version trained on
    assert import_subset(settings, store, per_species=1, skip=PER_SPECIES) == 10  # photos it never saw

    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        submitted = c.post(
            "/finetune", params={"model_name": "champipy", "stage": "Production", "variables": 1, "epochs": 1}
        )
        assert submitted.status_code == 202, submitted.text
        job = wait_for_job(c, submitted.json()["id"])
        assert job["state"] == "succeeded", job["error"]
        assert job["progress"], "progress was reported while it ran"
        new_version = job["result"]["version"]
        assert new_version != admin_api["version"] and job["result"]["promoted"] is False
        assert job["result"]["images"] == 50
        assert job["result"]["metrics"]["val_seen_by_base"] == 0.0, "validated on the photos the base never saw"

        versions = {v["version"]: v for v in c.get("/models").json()}
        assert "eval_top1" in versions[new_version]["metrics"]
        assert versions[admin_api["version"]]["serving"] is True

        promoted = c.post(f"/models/{new_version}/promote")
        assert promoted.status_code == 200 and promoted.json()["serving"] is True
        photo = next(Path(settings.eval_dir).rglob("*.jpg"))
        answer = c.post("/predictions", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert answer.json()["model"]["version"] == new_version


def import_subset(settings, store, per_species: int, skip: int = 0) -> int:
    """Store ``per_species`` photos of each species, after the first ``skip`` (sorted by name)."""
    subset = Path(settings.data_dir) / f"subset-{skip}"
    for species in sorted(p.name for p in Path(settings.dataset_dir).iterdir()):
        (subset / species).mkdir(parents=True)
        for f in sorted((Path(settings.dataset_dir) / species).iterdir())[skip : skip + per_species]:
            shutil.copy(f, subset / species / f.name)
    return import_folder(store, subset, settings).added


@pytest.mark.slow
def test_retrain_job_trains_from_imagenet_and_promotes_only_if_better(admin_api):
    store, settings = admin_api["store"], admin_api["settings"]
    assert import_subset(settings, store, per_species=4) == 40
    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        assert c.post("/retrain", params={"promote_if_better": "maybe"}).status_code == 422
        submitted = c.post("/retrain", json={"promote_if_better": True})
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["kind"] == "retrain" and submitted.json()["params"] == {"promote_if_better": True}
        job = wait_for_job(c, submitted.json()["id"])
        assert job["state"] == "succeeded", job["error"]
        assert job["result"]["images"] == 40
        versions = {v["version"]: v for v in c.get("/models").json()}
    new, base = versions[job["result"]["version"]], versions[admin_api["version"]]
    assert new["params"]["variables"] == "0", "the default recipe: frozen features, not a fine-tune"
    better = new["metrics"]["eval_top1"] > base["metrics"]["eval_top1"]
    assert job["result"]["promoted"] is better
    assert new["serving"] is better and base["serving"] is not better


def test_species_lists_the_model_s_own_and_those_experts_are_teaching(admin_api):
    store, settings = admin_api["store"], admin_api["settings"]
    needed = settings.new_species_min_photos
    for n in range(needed):  # ready: exactly enough photos a person labelled
        source = LabelSource.CONFIRMED if n % 2 else LabelSource.IMPORTED
        store.add_image(NewImage(sha256=f"{n:064x}", data=b"x", label="Boletus edulis", label_source=source))
    store.add_image(
        NewImage(sha256="a" * 64, data=b"x", label="Morchella esculenta", label_source=LabelSource.CONFIRMED)
    )
    for n in range(needed):  # predicted labels do not make a species ready
        store.add_image(
            NewImage(sha256=f"b{n:063x}", data=b"x", label="Russula emetica", label_source=LabelSource.PREDICTED)
        )
    store.add_image(NewImage(sha256="c" * 64, data=b"x", label="not a mushroom", label_source=LabelSource.CONFIRMED))

    with client(admin_api["url"], auth=admin_api["admin"].auth) as c:
        body = c.get("/species").json()
    with client(admin_api["url"], auth=admin_api["user"].auth) as c:
        names = c.get("/species/names").json()

    assert body["min_photos"] == needed
    state = {s["species"]: s["state"] for s in body["species"]}
    known = [s for s in body["species"] if s["in_model"]]
    assert len(known) == 10 and all(s["state"] == "known" for s in known)
    assert state["Boletus edulis"] == "ready" and state["Morchella esculenta"] == "waiting"
    assert state["Russula emetica"] == "waiting" and state["not a mushroom"] == "special"
    assert [s["state"] for s in body["species"]] == sorted(
        (s["state"] for s in body["species"]), key=["known", "ready", "waiting", "special"].index
    )
    assert "Boletus edulis" in names and "Amanita muscaria" in names and "not a mushroom" not in names
