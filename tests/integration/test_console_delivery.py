"""Console delivery over HTTP: batches (exclusive, complete, recoverable), the CHSI package, print sheets,
the mailing list, marks, and hostile requests. Real broker and database; approved applications are
written to the store (the journey and review tests cover getting there)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import zipfile
from datetime import datetime, timedelta
from typing import Any

from PIL import Image, ImageDraw

from services.gateway.console import batches as batches_module
from services.gateway.console.batches import Batches
from services.gateway.console.operators import Role
from services.gateway.roster import import_roster
from services.gateway.schools import demo_school
from services.gateway.store import Applications
from shared.events import new_id, utcnow
from tests.support.codes import blank_image
from tests.support.console import operator
from tests.support.system import running_system

SCHOOL = "10487"
OTHER = "10001"
API = "/console/api/v1/schools"


def row(number: str, name: str, class_name: str = "计科2101") -> dict[str, str]:
    return {
        "name": name,
        "student_number": number,
        "id_last4": "1234",
        "class_name": class_name,
        "level": "本科",
        "onsite_shot": "否",
    }


ROWS = [row(f"21102160{i:02d}", f"学生{i:02d}", "计科2101" if i % 2 else "计科2102") for i in range(1, 16)]


def chsi_photo(shade: int, size: tuple[int, int] = (480, 640), quality: int = 85) -> bytes:
    """A photo as imaging writes it: 480×640 JPEG, well under 40 KB, different per shade."""
    image = Image.new("RGB", size, (100, 197, 255))
    ImageDraw.Draw(image).ellipse((140, 120, 340, 400), fill=(shade, 160, 140))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, dpi=(300, 300))
    return out.getvalue()


async def approved(
    system: Any,
    number: str,
    *,
    school_code: str = SCHOOL,
    photo: bytes | None = None,
    state: str = "approved",
    mailing: tuple[str, str] = ("registrar", "直接邮寄学校学籍部门"),
    student_id: str | None = None,
) -> str:
    application_id = new_id()
    photo_id = new_id()
    data = photo if photo is not None else chsi_photo(int(number[-2:]) * 8)
    blob_id = await system.gateway.blobs.put(data, filename="std", content_type="image/jpeg")
    now = utcnow()
    await Applications(system.gateway.database, lambda: None).create(
        {
            "_id": application_id,
            "state": state,
            "school_code": school_code,
            "student_id": student_id or f"{school_code}:{number}",
            "owner_openid": f"o-{application_id}",
            "confirmation": {
                "graduation_year": {"code": "2025", "label": "普通本专科_2025届毕业生"},
                "mailing_method": {"code": mailing[0], "label": mailing[1]},
                "confirmed_at": now,
            },
            "photos": {
                photo_id: {
                    "status": "standardized",
                    "raw_blob_id": blob_id,
                    "standardized_blob_id": blob_id,
                    "uploaded_at": now,
                    "source": "camera",
                    "standardisation_number": 1,
                }
            },
            "submission": {"submission_id": new_id(), "photo_id": photo_id, "submitted_at": now, "count": 1},
            "review": {"review_id": new_id(), "decision": "approved", "decided_at": now},
            "resubmissions_left": 2,
        }
    )
    return application_id


async def other_school(system: Any) -> None:
    await system.gateway.database.db["schools"].replace_one(
        {"_id": OTHER},
        {"_id": OTHER, **demo_school(OTHER, "其他大学").model_dump()},
        upsert=True,
    )
    await import_roster(
        system.gateway.database, system.gateway.blobs, OTHER, [row("3000000001", "外校生")], None
    )


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode()), "UTF-8 with BOM, so Excel reads it as UTF-8"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


async def test_batch_contents_package_print_sheets_mailing_list_and_marks(env):
    async with running_system(env, with_codec=False, roster=ROWS) as system:
        db = system.gateway.database.db
        good = [await approved(system, ROWS[i]["student_number"]) for i in range(3)]
        pickup = await approved(
            system, ROWS[3]["student_number"], mailing=("self_pickup", "学籍部门统一领取")
        )
        good.append(pickup)
        waiting = await approved(system, ROWS[4]["student_number"], state="in_review")
        wrong_size = await approved(system, ROWS[5]["student_number"], photo=blank_image())  # 640×480
        too_big = await approved(
            system,
            ROWS[6]["student_number"],
            photo=chsi_photo(10, size=(480, 640), quality=100) + b"\0" * 41000,
        )
        await other_school(system)
        elsewhere = await approved(system, "3000000001", school_code=OTHER)
        support = await operator(system, "sam@example.com", Role.SUPPORT, [SCHOOL])

        status, overview = await support.request("GET", f"{API}/{SCHOOL}/delivery")
        assert status == 200, overview
        assert overview == {"school_code": SCHOOL, "ready": 6, "batches": []}

        status, batch = await support.request("POST", f"{API}/{SCHOOL}/delivery/batches", json={})
        assert status == 201, batch
        assert (
            batch["count"] == 4 and batch["state"] == "closed" and batch["created_by"] == support.operator_id
        )
        assert batch["printed_at"] is None and batch["mailed_at"] is None and batch["downloads"] == {}
        refused = {r["application_id"]: r["reason"] for r in batch["refused"]}
        assert refused.keys() == {wrong_size, too_big}
        assert refused[wrong_size].startswith("photo_wrong_size") and refused[too_big].startswith(
            "photo_too_large"
        )
        batch_id = batch["batch_id"]

        # What is in the batch is on the applications: delivery written whole, datetimes kept as datetimes.
        for application_id in good:
            stored = await db["applications"].find_one({"_id": application_id})
            delivery = stored["delivery"]
            assert delivery["batch_id"] == batch_id and isinstance(delivery["exported_at"], datetime)
            assert delivery["printed_at"] is None and delivery["mailed_at"] is None
        for application_id in (waiting, wrong_size, too_big, elsewhere):
            assert "delivery" not in await db["applications"].find_one({"_id": application_id})
        student = await system.student(f"o-{good[0]}")
        status, seen = await student.request("GET", "/api/v1/application")
        assert status == 200 and seen["state"] == "approved", seen
        assert seen["next"]["label"] == "照片已导出上传学信网，等待冲印"
        assert seen["delivery"]["exported_at"] and seen["delivery"]["printed_at"] is None
        refused_student = await system.student(f"o-{wrong_size}")
        status, seen = await refused_student.request("GET", "/api/v1/application")
        assert seen["next"]["label"] == "审核通过，请等待照片上传学信网" and seen["delivery"] is None

        # Nothing is exported twice: the refused two stay ready, and a new batch takes nothing.
        status, overview = await support.request("GET", f"{API}/{SCHOOL}/delivery")
        assert overview["ready"] == 2 and [b["batch_id"] for b in overview["batches"]] == [batch_id]
        # Who made it is shown by email, not only by the operator's id.
        assert overview["batches"][0]["created_by_email"] == "sam@example.com"
        status, body = await support.request("POST", f"{API}/{SCHOOL}/delivery/batches", json={})
        assert status == 409 and body["code"] == "nothing_to_deliver"
        assert {r["application_id"] for r in body["details"]["refused"]} == {wrong_size, too_big}
        assert await db["delivery_batches"].count_documents({}) == 1

        status, detail = await support.request("GET", f"{API}/{SCHOOL}/delivery/batches/{batch_id}")
        assert status == 200, detail
        members = {m["application_id"]: m for m in detail["applications"]}
        assert members.keys() == set(good)
        assert members[good[0]]["student_number"] == ROWS[0]["student_number"]
        assert members[good[0]]["name"] == "学***" and members[good[0]]["file_name"] == "2110216001.jpg"

        # The CHSI package: the stored JPEGs byte for byte, 480×640, named by the default rule, and a manifest.
        status, package = await support.request("GET", f"{API}/{SCHOOL}/delivery/batches/{batch_id}/chsi.zip")
        assert status == 200 and isinstance(package, bytes)
        archive = zipfile.ZipFile(io.BytesIO(package))
        assert archive.testzip() is None
        numbers = [ROWS[i]["student_number"] for i in range(4)]
        assert sorted(archive.namelist()) == sorted([f"{n}.jpg" for n in numbers] + ["manifest.csv"])
        manifest = read_csv(archive.read("manifest.csv"))
        assert [m["student_number"] for m in manifest] == numbers
        for entry in manifest:
            data = archive.read(entry["file_name"])
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "JPEG" and image.size == (480, 640)
            assert len(data) <= 40 * 1024 and int(entry["bytes"]) == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert entry["school_code"] == SCHOOL and entry["school_name"] == "示范大学"
            assert datetime.fromisoformat(entry["approved_at"]).tzinfo is not None
        first = await db["applications"].find_one({"_id": good[0]})
        blob = first["photos"][first["submission"]["photo_id"]]["standardized_blob_id"]
        assert archive.read("2110216001.jpg") == await system.gateway.blobs.get(blob)
        assert manifest[0]["name"] == "学生01"

        # Print sheets: 6×4 in at 300 dpi, one per student.
        status, sheets = await support.request("GET", f"{API}/{SCHOOL}/delivery/batches/{batch_id}/print.zip")
        assert status == 200
        printed = zipfile.ZipFile(io.BytesIO(sheets))
        assert sorted(printed.namelist()) == sorted(f"{n}.jpg" for n in numbers)
        for name in printed.namelist():
            with Image.open(io.BytesIO(printed.read(name))) as sheet:
                assert sheet.format == "JPEG" and sorted(sheet.size) == [1200, 1800]
                assert tuple(round(d) for d in sheet.info["dpi"]) == (300, 300)

        # Mailing list: one row per student, by mailing method then class.
        status, mailing = await support.request(
            "GET", f"{API}/{SCHOOL}/delivery/batches/{batch_id}/mailing.csv"
        )
        assert status == 200
        rows = read_csv(mailing)
        assert len(rows) == 4 and {r["student_number"] for r in rows} == set(numbers)
        by_number = {r["student_number"]: r for r in rows}
        assert by_number[ROWS[3]["student_number"]]["mailing_method"] == "学籍部门统一领取"
        assert by_number[ROWS[0]["student_number"]]["mailing_method"] == "直接邮寄学校学籍部门"
        assert [r["mailing_method_code"] for r in rows] == sorted(r["mailing_method_code"] for r in rows)
        assert all(r["batch_id"] == batch_id and r["print_size"] == "2寸" for r in rows)

        # Downloads are counted on the batch.
        status, detail = await support.request("GET", f"{API}/{SCHOOL}/delivery/batches/{batch_id}")
        assert {k: v["count"] for k, v in detail["downloads"].items()} == {
            "chsi": 1,
            "print": 1,
            "mailing": 1,
        }
        assert detail["downloads"]["chsi"]["last_by"] == support.operator_id

        # Marks: mailed needs printed; a repeated mark keeps the first time; the applications follow.
        mark = f"{API}/{SCHOOL}/delivery/batches/{batch_id}/mark"
        status, body = await support.request("POST", mark, json={"stage": "mailed"})
        assert status == 409 and body["code"] == "delivery_not_printed"
        status, marked = await support.request("POST", mark, json={"stage": "printed"})
        assert status == 200 and marked["printed_at"] is not None and marked["mailed_at"] is None
        status, again = await support.request("POST", mark, json={"stage": "printed"})
        assert status == 200 and again["printed_at"] == marked["printed_at"]
        status, mailed = await support.request("POST", mark, json={"stage": "mailed"})
        assert status == 200 and mailed["mailed_at"] is not None
        status, seen = await student.request("GET", "/api/v1/application")
        assert seen["next"]["label"] == "照片已上传学信网，纸质照片已邮寄" and seen["delivery"]["mailed_at"]
        for application_id in good:
            delivery = (await db["applications"].find_one({"_id": application_id}))["delivery"]
            assert isinstance(delivery["printed_at"], datetime) and isinstance(
                delivery["mailed_at"], datetime
            )
            assert isinstance(delivery["exported_at"], datetime)

        audited = [d async for d in db["audit_log"].find({"operator_id": support.operator_id})]
        actions = [d["action"] for d in audited]
        assert {"delivery.view", "delivery.batch_create", "delivery.batch_view", "delivery.mark"} <= set(
            actions
        )
        downloads = sorted(d["target"]["kind"] for d in audited if d["action"] == "delivery.download")
        assert downloads == ["chsi", "mailing", "print"]
        repeated = [d for d in audited if d["action"] == "delivery.mark" and d["target"].get("repeated")]
        assert len(repeated) == 1
        assert all("学生" not in str(d["target"]) for d in audited), "no names in the audit log"


async def test_two_creates_at_once_split_the_applications_without_overlap_or_gap(env):
    async with running_system(env, with_codec=False, roster=ROWS) as system:
        db = system.gateway.database.db
        ids = {await approved(system, r["student_number"]) for r in ROWS[:12]}
        alice = await operator(system, "alice@example.com", Role.SUPPORT, [SCHOOL])
        bob = await operator(system, "bob@example.com", Role.ADMIN, [])

        answers = await asyncio.gather(
            alice.request("POST", f"{API}/{SCHOOL}/delivery/batches", json={}),
            bob.request("POST", f"{API}/{SCHOOL}/delivery/batches", json={}),
        )
        assert {s for s, _ in answers} <= {201, 409} and 201 in {s for s, _ in answers}, answers
        made = [b for s, b in answers if s == 201]
        contents: list[set[str]] = []
        for batch in made:
            status, detail = await alice.request(
                "GET", f"{API}/{SCHOOL}/delivery/batches/{batch['batch_id']}"
            )
            assert status == 200
            contents.append({m["application_id"] for m in detail["applications"]})
            assert detail["count"] == len(contents[-1])
        union = set().union(*contents)
        assert union == ids, "nothing missed"
        assert sum(len(c) for c in contents) == len(ids), "nothing in two batches"
        assert await db["delivery_batches"].count_documents({}) == len(made), "no empty batch left"
        status, overview = await alice.request("GET", f"{API}/{SCHOOL}/delivery")
        assert overview["ready"] == 0

        # Also with the store directly, three at once: still a partition.
        more = {
            await approved(system, r["student_number"], student_id=f"{SCHOOL}:x{i}")
            for i, r in enumerate(ROWS)
        }
        batches = Batches(system.gateway.database, Applications(system.gateway.database, lambda: None))
        created = await asyncio.gather(*(batches.create(SCHOOL, f"op{i}") for i in range(3)))
        taken = [set((c.batch or {}).get("application_ids", [])) for c in created]
        assert set().union(*taken) == more and sum(len(t) for t in taken) == len(more)


async def test_refused_applications_at_the_head_do_not_keep_the_valid_ones_out(env, monkeypatch):
    """Refused applications stay ready and oldest: a batch reads on past a full page of them."""
    monkeypatch.setattr(batches_module, "MAX_BATCH", 2)
    async with running_system(env, with_codec=False, roster=ROWS) as system:
        bad = [await approved(system, r["student_number"], photo=b"not a jpeg") for r in ROWS[:3]]
        good = [await approved(system, r["student_number"]) for r in ROWS[3:6]]
        support = await operator(system, "s@example.com", Role.SUPPORT, [SCHOOL])
        status, batch = await support.request("POST", f"{API}/{SCHOOL}/delivery/batches", json={})
        assert status == 201, batch
        status, detail = await support.request("GET", f"{API}/{SCHOOL}/delivery/batches/{batch['batch_id']}")
        assert status == 200 and batch["count"] == 2
        assert {m["application_id"] for m in detail["applications"]} == set(good[:2])
        assert {r["application_id"]: r["reason"] for r in batch["refused"]} == dict.fromkeys(
            bad, "photo_unreadable"
        )
        # The next batch takes the last valid one, the refused ones are reported again and stay ready.
        status, second = await support.request("POST", f"{API}/{SCHOOL}/delivery/batches", json={})
        assert status == 201 and second["count"] == 1, second
        status, overview = await support.request("GET", f"{API}/{SCHOOL}/delivery")
        assert status == 200 and overview["ready"] == 3


async def test_a_crash_half_way_is_finished_by_the_next_call(env):
    async with running_system(env, with_codec=False, roster=ROWS) as system:
        db = system.gateway.database.db
        ids = [await approved(system, r["student_number"]) for r in ROWS[:4]]
        support = await operator(system, "sam@example.com", Role.SUPPORT, [SCHOOL])
        batches = Batches(system.gateway.database, Applications(system.gateway.database, lambda: None))

        # A creator that died after claiming two of four, and one that died before claiming anything.
        crashed = await batches.open(SCHOOL, support.operator_id)
        assert await batches.claim(crashed, ids[0]) and await batches.claim(crashed, ids[1])
        assert not await batches.claim(crashed, ids[0]), "a claim is never taken twice"
        empty = await batches.open(SCHOOL, support.operator_id)

        # Young open batches may still be running: not shown as finished, not downloadable.
        status, body = await support.request("GET", f"{API}/{SCHOOL}/delivery/batches/{crashed}/chsi.zip")
        assert status == 409 and body["code"] == "batch_open"
        status, overview = await support.request("GET", f"{API}/{SCHOOL}/delivery")
        assert overview["ready"] == 2
        assert {b["batch_id"]: b["state"] for b in overview["batches"]} == {crashed: "open", empty: "open"}

        # Ten minutes later their creators are certainly gone: the next call finishes them.
        an_hour_ago = utcnow() - timedelta(hours=1)
        await db["delivery_batches"].update_many({}, {"$set": {"created_at": an_hour_ago}})
        status, overview = await support.request("GET", f"{API}/{SCHOOL}/delivery")
        assert status == 200 and overview["ready"] == 2
        [recovered] = overview["batches"]
        assert recovered["batch_id"] == crashed and recovered["state"] == "closed" and recovered["count"] == 2
        assert await db["delivery_batches"].find_one({"_id": empty}) is None

        status, rest = await support.request("POST", f"{API}/{SCHOOL}/delivery/batches", json={})
        assert status == 201 and rest["count"] == 2
        status, detail = await support.request("GET", f"{API}/{SCHOOL}/delivery/batches/{rest['batch_id']}")
        assert {m["application_id"] for m in detail["applications"]} == set(ids[2:])

        # A mark that died after the batch but before the applications: repeating it finishes them.
        first_time = utcnow() - timedelta(minutes=5)
        await db["delivery_batches"].update_one(
            {"_id": crashed}, {"$set": {"marks": {"printed_at": first_time, "mailed_at": None}}}
        )
        status, marked = await support.request(
            "POST", f"{API}/{SCHOOL}/delivery/batches/{crashed}/mark", json={"stage": "printed"}
        )
        assert status == 200
        assert abs(datetime.fromisoformat(marked["printed_at"]) - first_time) < timedelta(seconds=1)
        for application_id in ids[:2]:
            stamped = (await db["applications"].find_one({"_id": application_id}))["delivery"]["printed_at"]
            assert abs(stamped - first_time) < timedelta(seconds=1)


async def test_hostile_requests_change_nothing(env):
    async with running_system(env, with_codec=False, roster=ROWS) as system:
        db = system.gateway.database.db
        await other_school(system)
        first = await approved(system, ROWS[0]["student_number"])
        # A second approved application of the same student would get the same file name.
        twin = await approved(system, ROWS[0]["student_number"], photo=chsi_photo(3))
        await db["students"].update_one(
            {"_id": f"{SCHOOL}:{ROWS[1]['student_number']}"}, {"$set": {"name": "=HYPERLINK(1)"}}
        )
        formula = await approved(system, ROWS[1]["student_number"])
        support = await operator(system, "sam@example.com", Role.SUPPORT, [SCHOOL])
        reviewer = await operator(system, "rita@example.com", Role.REVIEWER, [SCHOOL])
        stranger = await operator(system, "other@example.com", Role.SUPPORT, [OTHER])
        admin = await operator(system, "root@example.com", Role.ADMIN, [])
        create = f"{API}/{SCHOOL}/delivery/batches"

        # Roles, scope, CSRF, bodies: nothing is created.
        status, body = await reviewer.request("GET", f"{API}/{SCHOOL}/delivery")
        assert status == 403 and body["code"] == "forbidden"
        assert (await reviewer.request("POST", create, json={}))[0] == 403
        status, body = await stranger.request("GET", f"{API}/{SCHOOL}/delivery")
        assert status == 404 and body["code"] == "not_found"
        assert (await stranger.request("POST", create, json={}))[0] == 404
        assert (await support.request("GET", f"{API}/{OTHER}/delivery"))[0] == 404
        assert (await support.request("GET", f"{API}/nowhere/delivery"))[0] == 404
        status, body = await support.request("POST", create, json={}, csrf="")
        assert status == 403 and body["code"] == "csrf_failed"
        assert (await support.request("POST", create, json={}, csrf="forged"))[0] == 403
        status, body = await support.request("POST", create, json={"school_code": OTHER})
        assert status == 400 and body["code"] == "invalid_request"
        status, body = await support.request(
            "POST", create, data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert status == 400 and body["code"] == "invalid_json"
        assert (await support.request("POST", create, data=b"stage=1"))[0] == 415
        assert await db["delivery_batches"].count_documents({}) == 0
        assert await db["applications"].count_documents({"delivery": {"$exists": True}}) == 0

        status, batch = await support.request("POST", create, json={})
        assert status == 201 and batch["count"] == 2
        assert [r["reason"] for r in batch["refused"]] == ["file_name_duplicate"]
        batch_id = batch["batch_id"]
        inside = {d["_id"] async for d in db["applications"].find({"delivery.batch_id": batch_id})}
        assert inside == {formula, first} or inside == {formula, twin}

        # The spreadsheet never sees a formula.
        status, package = await support.request("GET", f"{create}/{batch_id}/chsi.zip")
        manifest = read_csv(zipfile.ZipFile(io.BytesIO(package)).read("manifest.csv"))
        assert "'=HYPERLINK(1)" in [m["name"] for m in manifest]
        mailing = read_csv((await support.request("GET", f"{create}/{batch_id}/mailing.csv"))[1])
        assert "'=HYPERLINK(1)" in [m["name"] for m in mailing]

        # Unknown, overlong and other-school batch ids are 404; so is a batch through another school's path.
        for path in (f"{create}/{new_id()}", f"{create}/{'x' * 300}", f"{create}/{new_id()}/chsi.zip"):
            status, body = await support.request("GET", path)
            assert status == 404 and body["code"] == "not_found", path
        assert (await stranger.request("GET", f"{create}/{batch_id}"))[0] == 404
        assert (await stranger.request("GET", f"{API}/{OTHER}/delivery/batches/{batch_id}"))[0] == 404
        assert (await admin.request("GET", f"{API}/{OTHER}/delivery/batches/{batch_id}/mailing.csv"))[
            0
        ] == 404
        assert (await reviewer.request("GET", f"{create}/{batch_id}/chsi.zip"))[0] == 403
        assert (await stranger.request("POST", f"{create}/{batch_id}/mark", json={"stage": "printed"}))[
            0
        ] == 404
        assert (await support.request("POST", f"{create}/{new_id()}/mark", json={"stage": "printed"}))[
            0
        ] == 404
        for bad in (
            {"stage": "uploaded"},
            {},
            {"stage": "printed", "at": "2020-01-01"},
            {"stage": ["printed"]},
        ):
            status, body = await support.request("POST", f"{create}/{batch_id}/mark", json=bad)
            assert status == 400 and body["code"] == "invalid_request", bad
        assert (
            await support.request("POST", f"{create}/{batch_id}/mark", json={"stage": "printed"}, csrf="")
        )[0] == 403
        stored = await db["delivery_batches"].find_one({"_id": batch_id})
        assert stored["marks"] == {"printed_at": None, "mailed_at": None}
        assert [
            d
            async for d in db["audit_log"].find({"action": "forbidden", "operator_id": reviewer.operator_id})
        ]

        # Naming templates: traversal, unknown or non-unique fields, attribute access, wrong type: refused.
        status, school = await admin.request("GET", f"{API}/{SCHOOL}")
        assert school["chsi_file_name"] == "{student_number}.jpg"
        for template in (
            "../{student_number}.jpg",
            "a/{student_number}.jpg",
            "a\\{student_number}.jpg",
            "{id_last4}.jpg",
            "{name}.jpg",
            "{student_number.__class__}.jpg",
            "{student_number!r}.jpg",
            "{student_number:>40}.jpg",
            "{}.jpg",
            "{student_number}.png",
            "{school_code}.jpg",
            "学号{student_number}.jpg",
            "{student_number}{" + "x" * 120 + ".jpg",
        ):
            status, body = await admin.request(
                "PUT", f"{API}/{SCHOOL}", json={**school, "chsi_file_name": template}
            )
            assert status == 400 and body["code"] == "invalid_request", template
        status, body = await admin.request("PUT", f"{API}/{SCHOOL}", json={**school, "print_size": "A4"})
        assert status == 400
        assert (await admin.request("GET", f"{API}/{SCHOOL}"))[1]["chsi_file_name"] == "{student_number}.jpg"

        # A valid template is used by the next batch.
        status, saved = await admin.request(
            "PUT",
            f"{API}/{SCHOOL}",
            json={
                **school,
                "chsi_file_name": "{school_code}_{graduation_year}-{student_number}.jpg",
                "print_size": "1寸",
            },
        )
        assert status == 200 and saved["print_size"] == "1寸"
        await approved(system, ROWS[2]["student_number"])
        status, second = await support.request("POST", create, json={})
        # The twin refused from the first batch (same name there) is unique in this one and goes in.
        assert status == 201 and second["count"] == 2 and second["refused"] == []
        status, package = await support.request("GET", f"{create}/{second['batch_id']}/chsi.zip")
        assert sorted(zipfile.ZipFile(io.BytesIO(package)).namelist()) == [
            f"{SCHOOL}_2025-{ROWS[0]['student_number']}.jpg",
            f"{SCHOOL}_2025-{ROWS[2]['student_number']}.jpg",
            "manifest.csv",
        ]

        # A photo erased after the batch was made: the package is refused, not sent incomplete.
        stored = await db["applications"].find_one({"delivery.batch_id": second["batch_id"]})
        await system.gateway.blobs.delete(
            stored["photos"][stored["submission"]["photo_id"]]["standardized_blob_id"]
        )
        status, body = await support.request("GET", f"{create}/{second['batch_id']}/chsi.zip")
        assert status == 409 and body["code"] == "delivery_photo_invalid"
        assert body["details"]["problems"] == [{"application_id": stored["_id"], "reason": "photo_missing"}]
        failed = await db["audit_log"].find_one({"action": "delivery.download", "outcome": "failed"})
        assert failed is not None and failed["target"]["batch_id"] == second["batch_id"]
