"""Console: school configuration and roster import over HTTP, hostile uploads included."""

from __future__ import annotations

import io
import zipfile

import aiohttp

from services.gateway.console.operators import Role
from tests.support.codes import blank_image
from tests.support.console import operator
from tests.support.system import running_system

CSV = "姓名,学号,证件号后4位,班级,层次,是否参加现场拍摄\n孙小明,2110216099,4321,计科2101,本科,否\n".encode()


def upload(roster: bytes, filename: str = "roster.csv", photos: bytes | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("roster", roster, filename=filename, content_type="application/octet-stream")
    if photos is not None:
        form.add_field("photos", photos, filename="photos.zip", content_type="application/zip")
    return form


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


async def test_school_configuration_is_scoped_validated_and_audited(env):
    async with running_system(env, with_codec=False) as system:
        admin = await operator(system, "root@example.com", Role.ADMIN, [])
        support = await operator(system, "sam@example.com", Role.SUPPORT, ["10487"])
        stranger = await operator(system, "other@example.com", Role.SUPPORT, ["10001"])

        status, listed = await stranger.request("GET", "/console/api/v1/schools")
        assert status == 200 and listed["schools"] == []
        assert (await stranger.request("GET", "/console/api/v1/schools/10487"))[0] == 404
        status, school = await support.request("GET", "/console/api/v1/schools/10487")
        assert status == 200 and school["fee_fen"] == 3500

        edited = {**school, "fee_fen": 4000, "notice": "<b>请</b>阅读"}
        assert (await support.request("PUT", "/console/api/v1/schools/10487", json=edited))[0] == 403
        assert (await admin.request("PUT", "/console/api/v1/schools/10487", json=edited, csrf=""))[0] == 403
        status, body = await admin.request(
            "PUT", "/console/api/v1/schools/10487", json={**edited, "fee_fen": -1}
        )
        assert status == 400 and body["code"] == "invalid_request"
        assert (
            await admin.request("PUT", "/console/api/v1/schools/10487", json={**edited, "school_code": "1"})
        )[0] == 400
        status, saved = await admin.request("PUT", "/console/api/v1/schools/10487", json=edited)
        assert status == 200 and saved["fee_fen"] == 4000 and saved["notice"] == "<b>请</b>阅读"
        student = await system.student("o-config")
        assert (await student.request("GET", "/api/v1/schools/10487"))[1]["fee_fen"] == 4000
        entry = await system.gateway.database.db["audit_log"].find_one({"action": "school.update"})
        assert entry["target"]["changed"] == ["fee_fen", "notice"]


async def test_roster_import_reports_and_refuses_hostile_files(env):
    async with running_system(env, with_codec=False, console_max_import_bytes=64 * 1024) as system:
        support = await operator(system, "sam@example.com", Role.SUPPORT, ["10487"])
        reviewer = await operator(system, "rita@example.com", Role.REVIEWER, ["10487"])
        url = "/console/api/v1/schools/10487/roster"

        status, report = await support.request(
            "POST", url, data=upload(CSV, photos=zipped({"photos/2110216099.jpg": blank_image()}))
        )
        assert status == 200, report
        assert report["ok"] and report["created"] == 1 and report["photos_stored"] == 1
        stored = await system.gateway.database.db["students"].find_one({"_id": "10487:2110216099"})
        assert stored["name"] == "孙小明" and stored["admission_photo_blob_id"]
        # A row that fails validation is in the report, not a failure of the whole import.
        status, report = await support.request("POST", url, data=upload(CSV + "无学号,,12,,,\n".encode()))
        assert status == 200 and not report["ok"] and report["rejected"][0]["row"] == 3

        assert (await reviewer.request("POST", url, data=upload(CSV)))[0] == 403
        assert (await support.request("POST", "/console/api/v1/schools/10001/roster", data=upload(CSV)))[
            0
        ] == 404

        # Oversized, malformed CSV and XLSX, a zip with path traversal names, an inflation bomb.
        status, body = await support.request("POST", url, data=upload(CSV + b"x" * 70_000))
        assert status == 413 and body["code"] == "import_too_large"
        status, body = await support.request("POST", url, data=upload(b"\x00\xff\xfe garbage \x00"))
        assert status == 400 and body["code"] == "roster_invalid"
        status, body = await support.request(
            "POST", url, data=upload(b"PK\x03\x04 not a workbook", "roster.xlsx")
        )
        assert status == 400 and body["code"] == "roster_invalid"
        evil = zipped({"../../../etc/2110216099.jpg": blank_image()})
        status, body = await support.request("POST", url, data=upload(CSV, photos=evil))
        assert status == 400 and body["code"] == "unsafe_archive"
        status, body = await support.request(
            "POST", url, data=upload(CSV, photos=zipped({"..\\x.jpg": b"1"}))
        )
        assert status == 400 and body["code"] == "unsafe_archive"
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("2110216099.jpg", b"\x00" * 5_000_000)
        status, body = await support.request("POST", url, data=upload(CSV, photos=out.getvalue()))
        assert status == 413 and body["code"] == "import_too_large"
        status, body = await support.request("POST", url, data=upload(CSV, photos=b"not a zip"))
        assert status == 400 and body["code"] == "roster_invalid"

        imports = [d async for d in system.gateway.database.db["audit_log"].find({"action": "roster.import"})]
        assert len(imports) == 2 and imports[0]["operator_id"] == support.operator_id
