"""Roster import: validation report, admission photos, re-import without duplicates."""

from __future__ import annotations

import io
import zipfile

import pytest
from gridfs import AsyncGridFSBucket
from openpyxl import Workbook

from services.gateway.roster import PhotoCheck, RosterError, import_roster, read_photos, read_rows
from shared.blobs import BlobStore
from tests.support.codes import blank_image

CSV = (
    "姓名,学号,证件号后4位,班级,层次,是否参加现场拍摄\n"
    "赵小明,2110216052,2(3),2021级口腔医学16班,专科,否\n"
    "钱小红,2110216053,123X,2021级口腔医学16班,专科,是\n"
    ",2110216054,5678,2021级,专科,否\n"
    "孙小亮,2110216052,1111,2021级,专科,否\n"
    "李小刚,21102$16055,1111,2021级,专科,否\n"
    "周小芳,2110216056,2222,2021级,专科,也许\n"
)


async def blob_count(database) -> int:
    bucket = AsyncGridFSBucket(database.db, bucket_name="blobs")
    return len([f async for f in bucket.find({})])


def photos_zip(**photos: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for number, data in photos.items():
            archive.writestr(f"照片/{number}.jpg", data)
        archive.writestr("__MACOSX/._2110216052.jpg", b"junk")
    return out.getvalue()


def test_read_rows_maps_chinese_headers_and_refuses_files_without_required_columns():
    rows = read_rows(CSV.encode("utf-8-sig"), "roster.csv")
    assert rows[0] == {
        "name": "赵小明",
        "student_number": "2110216052",
        "id_last4": "2(3)",
        "class_name": "2021级口腔医学16班",
        "level": "专科",
        "onsite_shot": "否",
    }
    assert read_rows(CSV.encode("gb18030"), "roster.csv") == rows  # Excel in China saves GB18030
    with pytest.raises(RosterError, match="missing columns"):
        read_rows("姓名,班级\n张三,1班\n".encode(), "roster.csv")
    with pytest.raises(RosterError):
        read_rows(b"", "roster.csv")
    with pytest.raises(RosterError):
        read_rows(b"not an xlsx", "roster.xlsx")


def test_xlsx_is_read_like_csv():
    book = Workbook()
    sheet = book.active
    for line in CSV.splitlines():
        sheet.append(line.split(","))
    out = io.BytesIO()
    book.save(out)
    assert read_rows(out.getvalue(), "名单.xlsx") == read_rows(CSV.encode(), "roster.csv")


def test_photo_archive_is_keyed_by_student_number_and_junk_is_ignored():
    photos = read_photos(photos_zip(**{"2110216052": b"a"}))
    assert photos == {"2110216052": b"a"}
    with pytest.raises(RosterError):
        read_photos(b"not a zip")


async def test_import_reports_bad_rows_and_reimport_changes_nothing(database):
    blobs = BlobStore(database)
    rows = read_rows(CSV.encode(), "roster.csv")
    photo = blank_image()
    photos = {"2110216052": photo, "2110216053": b"not an image"}
    report = await import_roster(database, blobs, "10487", rows, photos)
    rejected = {(p.row, p.code) for p in report.rejected}
    assert rejected == {
        (3, "photo_unreadable"),
        (4, "missing_field"),
        (5, "duplicate_student_number"),
        (6, "bad_student_number"),
        (7, "bad_onsite_flag"),
    }
    assert report.created == 1 and report.photos_stored == 1
    student = await database.db["students"].find_one({"_id": "10487:2110216052"})
    assert student["name"] == "赵小明" and student["id_last4"] == "2(3)" and student["onsite_shot"] is False
    assert await blobs.get(student["admission_photo_blob_id"]) == photo

    again = await import_roster(database, blobs, "10487", rows, photos)
    assert (again.created, again.updated, again.unchanged, again.photos_stored) == (0, 0, 1, 0)
    assert await database.db["students"].count_documents({}) == 1
    assert await blob_count(database) == 1

    changed = [dict(rows[0], class_name="2021级口腔医学17班")]
    update = await import_roster(database, blobs, "10487", changed, None)
    assert update.updated == 1
    assert (await database.db["students"].find_one({"_id": "10487:2110216052"}))["class_name"].endswith(
        "17班"
    )

    # matching's stored descriptor of the admission photo: kept while the photo stays, gone with it.
    descriptors = database.db["admission_descriptors"]
    await descriptors.insert_one({"_id": "10487:2110216052", "reading": "v1:dev:AAAA"})
    await import_roster(database, blobs, "10487", rows, photos)
    assert await descriptors.count_documents({}) == 1
    replaced = await import_roster(database, blobs, "10487", rows, {"2110216052": blank_image("PNG")})
    assert replaced.photos_stored == 1 and await descriptors.count_documents({}) == 0


async def test_admission_photos_failing_the_face_check_are_reported_at_import(database):
    rows = read_rows(CSV.encode(), "roster.csv")[:1]

    def no_face(_data: bytes) -> PhotoCheck:
        return PhotoCheck(False, "no_face", "录取照片中未检测到人脸", faces=0)

    report = await import_roster(
        database, BlobStore(database), "10487", rows, {"2110216052": blank_image()}, check_photo=no_face
    )
    assert [(p.code, p.message) for p in report.rejected] == [("no_face", "录取照片中未检测到人脸")]
    assert await database.db["students"].count_documents({}) == 0
