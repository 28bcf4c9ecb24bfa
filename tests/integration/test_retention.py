"""Retention: photos and derived data of delivered applications are purged after the period (injected clock)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.console.operators import Role
from services.gateway.retention import purge_abandoned, purge_delivered
from services.gateway.store import Applications
from shared.blobs import BlobNotFound, BlobStore
from shared.events import new_id, utcnow
from tests.conftest import ROOT
from tests.support.console import operator
from tests.support.system import running_system

T0 = datetime(2027, 1, 1, 8, 0, tzinfo=UTC)
PERIOD = timedelta(days=90)
NAME, NUMBER = "赵小明", "2110216052"


async def seed(
    database: Any, blobs: BlobStore, *, exported_at: Any, state: str = "approved", school: str = "10487"
) -> dict[str, Any]:
    """A delivered (or not) application with every kind of blob and worker document behind it."""
    application_id, photo_id, number = new_id(), new_id(), f"21{new_id()[:8]}"
    student_id = f"{school}:{number}"
    raw = await blobs.put(
        b"raw", filename="raw", content_type="image/jpeg", application_id=application_id, kind="raw_photo"
    )
    std = await blobs.put(
        b"std", filename="std", content_type="image/jpeg", photo_id=photo_id, kind="standardized"
    )
    code_image = await blobs.put(
        b"code", filename="code", content_type="image/png", application_id=application_id, kind="code_image"
    )
    # A standardised JPEG a crashed imaging attempt left behind: found by its photo id.
    orphan = await blobs.put(
        b"orphan", filename="o", content_type="image/jpeg", photo_id=photo_id, kind="standardized"
    )
    # Imaging's rendering of a refused photo (kept for an override), named only by the application.
    placed = await blobs.put(b"placed", filename="placed", content_type="image/jpeg")
    admission = await blobs.put(b"admission", filename="adm", content_type="image/jpeg")
    db = database.db
    await db["students"].insert_one(
        {
            "_id": student_id,
            "school_code": school,
            "name": NAME,
            "student_number": number,
            "admission_photo_blob_id": admission,
        }
    )
    document: dict[str, Any] = {
        "_id": application_id,
        "state": state,
        "school_code": school,
        "student_id": student_id,
        "owner_openid": f"o-{application_id}",
        "claim": {"name": NAME, "student_number": number, "id_last4": "2(3)"},
        "code": {"scan_id": new_id(), "status": "decoded", "image_blob_id": code_image},
        "photos": {
            photo_id: {
                "status": "standardized",
                "raw_blob_id": raw,
                "standardized_blob_id": std,
                "uploaded_at": T0 - timedelta(days=200),
                "standardisation_number": 1,
            },
            new_id(): {"status": "rejected", "raw_blob_id": raw, "placed_blob_id": placed},
        },
        "submission": {"photo_id": photo_id, "count": 1},
        "match": {"score": 91.5, "passed": True, "photo_id": photo_id},
    }
    if exported_at is not None:
        document["delivery"] = {
            "batch_id": new_id(),
            "exported_at": exported_at,
            "printed_at": None,
            "mailed_at": None,
        }
    await Applications(database, lambda: None).create(document)
    await db["photos"].insert_one(
        {
            "_id": photo_id,
            "application_id": application_id,
            "status": "standardized",
            "raw_blob_id": raw,
            "standardized_blob_id": std,
            "geometry": {"eyes_y": 250},
            "measures": [],
        }
    )
    await db["matches"].insert_one({"_id": photo_id, "application_id": application_id, "score": 91.5})
    await db["admission_descriptors"].insert_one(
        {"_id": student_id, "admission_photo_blob_id": admission, "model": "m", "reading": "v1:dev:AAAA"}
    )
    return {
        "id": application_id,
        "photo_id": photo_id,
        "blobs": [raw, std, code_image, orphan, placed],
        "admission": admission,
    }


async def readable(blobs: BlobStore, blob_id: str) -> bool:
    try:
        await blobs.get(blob_id)
    except BlobNotFound:
        return False
    return True


async def test_delivered_applications_are_purged_after_the_period_and_only_then(database: Any) -> None:
    blobs = BlobStore(database)
    db = database.db
    old = await seed(database, blobs, exported_at=T0 - timedelta(days=100))
    # nx-27017 may hand a datetime back as text (docs/architecture.md): the job reads both.
    old_text = await seed(database, blobs, exported_at=(T0 - timedelta(days=91)).isoformat())
    recent = await seed(database, blobs, exported_at=T0 - timedelta(days=10))
    undelivered = await seed(database, blobs, exported_at=None)
    garbage = await seed(database, blobs, exported_at="not a time")
    before = {
        a["id"]: await db["applications"].find_one({"_id": a["id"]}) for a in (recent, undelivered, garbage)
    }

    report = await purge_delivered(database, blobs, period=PERIOD, now=lambda: T0, batch_size=2)
    assert report.as_dict() == {
        "period_days": 90.0,
        "checked": 4,  # the undelivered one is not even read
        "delivered": 3,
        "due": 2,
        "purged": 2,
        "already_purged": 0,
        "blobs_deleted": 10,
        "matches_deleted": 2,
    }
    for purged in (old, old_text):
        for blob_id in purged["blobs"]:
            assert not await readable(blobs, blob_id)
        assert await readable(blobs, purged["admission"])  # the school's roster photo stays
        doc = await db["applications"].find_one({"_id": purged["id"]})
        assert doc["retention"]["purged_at"] == T0 and doc["retention"]["blobs_deleted"] == 5
        assert doc["retention"]["period_days"] == 90.0 and doc["version"] == 2
        photo = doc["photos"][purged["photo_id"]]
        assert photo["purged"] is True and "raw_blob_id" not in photo and "standardized_blob_id" not in photo
        assert "image_blob_id" not in doc["code"] and doc["code"]["status"] == "decoded"
        assert doc["match"]["score"] == 91.5 and doc["state"] == "approved"  # the record of what happened
        imaging = await db["photos"].find_one({"_id": purged["photo_id"]})
        assert (
            imaging["purged_at"] == T0 and "geometry" not in imaging and "standardized_blob_id" not in imaging
        )
        assert await db["matches"].find_one({"application_id": purged["id"]}) is None
        assert await db["admission_descriptors"].find_one({"_id": doc["student_id"]}) is None
    for kept in (recent, undelivered, garbage):
        assert [await readable(blobs, b) for b in kept["blobs"]] == [True] * 5
        kept_doc = await db["applications"].find_one({"_id": kept["id"]})
        assert await db["admission_descriptors"].find_one({"_id": kept_doc["student_id"]}) is not None
        assert await db["applications"].find_one({"_id": kept["id"]}) == before[kept["id"]]
        assert await db["matches"].find_one({"application_id": kept["id"]}) is not None

    # Again: nothing left to do, nothing rewritten.
    again = await purge_delivered(database, blobs, period=PERIOD, now=lambda: T0)
    assert (again.purged, again.already_purged, again.blobs_deleted) == (0, 2, 0)
    assert (await db["applications"].find_one({"_id": old["id"]}))["version"] == 2

    # Eighty-one days later the recent one is due too.
    later = await purge_delivered(database, blobs, period=PERIOD, now=lambda: T0 + timedelta(days=81))
    assert (later.purged, later.already_purged) == (1, 2)
    assert not await readable(blobs, recent["blobs"][1])
    assert (await db["applications"].find_one({"_id": recent["id"]}))["retention"][
        "purged_at"
    ] == T0 + timedelta(days=81)


async def test_a_run_interrupted_after_deleting_blobs_finishes_on_the_next_run(database: Any) -> None:
    blobs = BlobStore(database)
    app = await seed(database, blobs, exported_at=T0 - timedelta(days=365))
    # The state a crash between the deletions and the mark leaves: some blobs gone, no mark.
    await blobs.delete(app["blobs"][0])
    await blobs.delete(app["blobs"][2])
    report = await purge_delivered(database, blobs, period=PERIOD, now=lambda: T0)
    assert report.purged == 1 and report.blobs_deleted == 5
    assert [await readable(blobs, b) for b in app["blobs"]] == [False] * 5
    doc = await database.db["applications"].find_one({"_id": app["id"]})
    assert doc["retention"]["purged_at"] == T0


YEAR = timedelta(days=365)


async def test_abandoned_applications_lose_their_photos_after_a_year_and_the_rest_is_kept(
    database: Any,
) -> None:
    blobs = BlobStore(database)
    db = database.db
    later = utcnow() + YEAR + timedelta(days=1)  # every seeded application was last changed just now
    abandoned = {
        state: await seed(database, blobs, exported_at=None, state=state) for state in ("paid", "rejected")
    }
    waiting = {
        state: await seed(database, blobs, exported_at=None, state=state)
        for state in ("approved", "in_review", "submitted", "registrar_review")
    }
    before = {a["id"]: await db["applications"].find_one({"_id": a["id"]}) for a in waiting.values()}

    # Not a year yet: nothing happens.
    early = await purge_abandoned(database, blobs, period=YEAR, now=lambda: utcnow() + timedelta(days=300))
    assert early.due == 0 and early.purged == 0

    report = await purge_abandoned(database, blobs, period=YEAR, now=lambda: later)
    assert (report.checked, report.due, report.purged, report.blobs_deleted) == (2, 2, 2, 10)
    for app in abandoned.values():
        assert [await readable(blobs, b) for b in app["blobs"]] == [False] * 5
        assert await readable(blobs, app["admission"])
        doc = await db["applications"].find_one({"_id": app["id"]})
        mark = doc["retention"]
        assert mark["reason"] == "abandoned" and mark["status"] == "done" and mark["blobs_deleted"] == 5
        assert "photos_before" not in mark and doc["state"] in ("paid", "rejected")
        assert all(p.get("purged") and "raw_blob_id" not in p for p in doc["photos"].values())
        assert await db["matches"].find_one({"application_id": app["id"]}) is None
    # Waiting for delivery, for a decision or for a worker: the system owes them something, nothing goes.
    for app in waiting.values():
        assert [await readable(blobs, b) for b in app["blobs"]] == [True] * 5
        assert await db["applications"].find_one({"_id": app["id"]}) == before[app["id"]]

    again = await purge_abandoned(database, blobs, period=YEAR, now=lambda: later)
    assert (again.due, again.purged, again.blobs_deleted) == (0, 0, 0)


async def test_an_abandoned_purge_that_died_after_marking_is_finished_and_spares_new_uploads(
    database: Any,
) -> None:
    blobs = BlobStore(database)
    db = database.db
    app = await seed(database, blobs, exported_at=None, state="paid")
    doc = await db["applications"].find_one({"_id": app["id"]})
    await asyncio.sleep(1.1)  # blob ids tell the second they were made in
    marked_at = utcnow()
    # What a run that died between its mark and its deletions leaves behind.
    await db["applications"].update_one(
        {"_id": app["id"]},
        {
            "$set": {
                "retention": {
                    "status": "purging",
                    "reason": "abandoned",
                    "purged_at": marked_at,
                    "period_days": 365.0,
                    "photos_before": doc["photos"],
                }
            }
        },
    )
    # The student came back after the mark and uploaded a new photo: made after the mark, it stays.
    await asyncio.sleep(1.1)
    fresh = await blobs.put(
        b"new", filename="new", content_type="image/jpeg", application_id=app["id"], kind="raw_photo"
    )
    report = await purge_abandoned(database, blobs, period=YEAR, now=utcnow)
    assert report.purged == 1 and report.blobs_deleted == 5
    assert [await readable(blobs, b) for b in app["blobs"]] == [False] * 5
    assert await readable(blobs, fresh)
    mark = (await db["applications"].find_one({"_id": app["id"]}))["retention"]
    assert mark["status"] == "done" and "photos_before" not in mark

    # If that student's application is delivered after all, its new photos are purged after delivery too.
    delivered = await db["applications"].find_one({"_id": app["id"]})
    delivered["delivery"] = {"batch_id": "b", "exported_at": T0 - timedelta(days=100), "printed_at": None}
    delivered["state"] = "approved"
    await db["applications"].replace_one({"_id": app["id"]}, delivered)
    after = await purge_delivered(database, blobs, period=PERIOD, now=lambda: T0)
    assert after.purged == 1 and not await readable(blobs, fresh)
    final = (await db["applications"].find_one({"_id": app["id"]}))["retention"]
    assert final["reason"] == "retention_period"


def cli_env(mongo_url: str, mongo_db: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ENVIRONMENT": "test",
        "MONGO_URL": mongo_url,
        "MONGO_DB": mongo_db,
        "LOG_FORMAT": "json",
        **extra,
    }


def run_privacy_cli(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "services.gateway.privacy_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines() if x.strip()], proc.stderr


async def test_retention_cli_purges_with_its_clock_and_refuses_bad_arguments(
    database: Any, mongo_url: str, mongo_db: str
) -> None:
    blobs = BlobStore(database)
    app = await seed(database, blobs, exported_at=T0 - timedelta(days=40))
    env = cli_env(mongo_url, mongo_db, RETENTION_DAYS_AFTER_DELIVERY="30")
    for bad in (
        ["--days", "0"],
        ["--days", "-1"],
        ["--days", "abc"],
        ["--now", "yesterday"],
        ["--batch", "0"],
        ["--undelivered-days", "-1"],
    ):
        code, out, err = run_privacy_cli(env, "retention", *bad)
        assert code == 2 and out == [] and "usage" in err, (bad, err)
    assert [await readable(blobs, b) for b in app["blobs"]] == [True] * 5  # refused runs changed nothing

    code, out, _ = run_privacy_cli(env, "retention", "--now", (T0 - timedelta(days=20)).isoformat())
    assert code == 0 and out[0]["purged"] == 0 and out[0]["period_days"] == 30.0  # only 20 days then
    code, out, err = run_privacy_cli(env, "retention", "--now", T0.isoformat())
    assert code == 0 and out[0]["purged"] == 1 and out[0]["blobs_deleted"] == 5, err
    # The abandoned part ran too (nothing abandoned here: the one application was delivered).
    assert out[0]["abandoned"]["period_days"] == 365.0 and out[0]["abandoned"]["purged"] == 0
    assert NAME not in err + json.dumps(out, ensure_ascii=False) and app["id"] not in json.dumps(out)
    assert [await readable(blobs, b) for b in app["blobs"]] == [False] * 5


@pytest.mark.parametrize("purged", [True, False])
async def test_purged_photos_answer_410_and_missing_blobs_404_not_500(
    env: dict[str, str], purged: bool
) -> None:
    async with running_system(env, with_codec=False) as system:
        database, blobs = system.gateway.database, system.gateway.blobs
        app = await seed(database, blobs, exported_at=T0 - timedelta(days=100))
        admin = await operator(system, "ada@example.com", Role.ADMIN, [])
        student = await system.student(f"o-{app['id']}")
        photo_path = f"/console/api/v1/applications/{app['id']}/photos/{app['photo_id']}"
        status, body = await admin.request("GET", photo_path)
        assert status == 200 and body == b"std"
        if purged:
            await purge_delivered(database, blobs, period=PERIOD, now=lambda: T0)
            expected = (410, "photo_purged")
        else:
            # A blob lost some other way (deleted by hand): the answer is 404, never a 500.
            await blobs.delete(app["blobs"][1])
            expected = (404, "not_found")
        status, body = await admin.request("GET", photo_path)
        assert (status, body["code"]) == expected
        status, body = await student.request("GET", f"/api/v1/photos/{app['photo_id']}/image")
        assert (status, body["code"]) == expected
        # The admission photo (the school's) is still there to view.
        status, body = await admin.request("GET", f"/console/api/v1/applications/{app['id']}/admission-photo")
        assert status == 200 and body == b"admission"


async def test_the_gateway_runs_the_retention_job_in_the_background(env: dict[str, str]) -> None:
    async with running_system(
        env, with_codec=False, retention_interval_s=0.2, retention_days_after_delivery=30
    ) as system:
        database, blobs = system.gateway.database, system.gateway.blobs
        due = await seed(database, blobs, exported_at=utcnow() - timedelta(days=31))
        kept = await seed(database, blobs, exported_at=utcnow() - timedelta(days=29))
        deadline = asyncio.get_running_loop().time() + 15
        while not (await database.db["applications"].find_one({"_id": due["id"]})).get("retention"):
            assert asyncio.get_running_loop().time() < deadline, "the background job never purged it"
            await asyncio.sleep(0.1)
        assert [await readable(blobs, b) for b in due["blobs"]] == [False] * 5
        assert [await readable(blobs, b) for b in kept["blobs"]] == [True] * 5
        assert "retention" not in await database.db["applications"].find_one({"_id": kept["id"]})
