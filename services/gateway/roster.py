"""Roster import: a school's students (CSV or XLSX) and their admission photos (a zip named by 学号).

Used by the CLI now (`python -m services.gateway.roster import ...`) and by the console later. Every
row is validated; rejected rows are reported with a reason and never half-imported. A re-import
updates students in place (keyed by school and student number) and replaces an admission photo only
when its bytes changed, so importing the same files twice changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from PIL import Image

from shared.blobs import BlobStore
from shared.db import Database
from shared.events import utcnow

MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000

# Header aliases: what schools actually put in their spreadsheets.
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "姓名"),
    "student_number": ("student_number", "学号"),
    "id_last4": ("id_last4", "证件号后4位", "身份证后4位"),
    "class_name": ("class_name", "班级", "班号"),
    "level": ("level", "层次"),
    "onsite_shot": ("onsite_shot", "是否参加现场拍摄", "现场拍摄"),
}
REQUIRED = ("name", "student_number", "id_last4")
FIELD_LABELS = {"name": "姓名", "student_number": "学号", "id_last4": "证件号后4位"}
TRUE_WORDS = {"1", "true", "yes", "y", "是", "已拍", "参加"}
FALSE_WORDS = {"", "0", "false", "no", "n", "否", "未拍", "未参加"}


@dataclass(frozen=True)
class PhotoCheck:
    ok: bool
    code: str | None = None
    message: str | None = None
    faces: int | None = None


PhotoChecker = Callable[[bytes], PhotoCheck]


@dataclass
class RowProblem:
    row: int  # 1-based line in the file, header = 1
    student_number: str | None
    code: str
    message: str


@dataclass
class ImportReport:
    school_code: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    photos_stored: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "school_code": self.school_code,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "photos_stored": self.photos_stored,
            "rejected": [p.__dict__ for p in self.rejected],
            "warnings": [p.__dict__ for p in self.warnings],
        }


class RosterError(ValueError):
    """The file as a whole cannot be read (wrong format, no header, missing columns)."""


def read_rows(data: bytes, filename: str) -> list[dict[str, str]]:
    """Rows keyed by our column names; accepts CSV (UTF-8, UTF-8 with BOM, GB18030) or XLSX."""
    raw = _xlsx_rows(data) if filename.lower().endswith(".xlsx") else _csv_rows(data)
    if not raw:
        raise RosterError("the file has no header row")
    header = [unicodedata.normalize("NFKC", str(h or "")).strip().lower() for h in raw[0]]
    mapping: dict[int, str] = {}
    for index, title in enumerate(header):
        for column, aliases in COLUMNS.items():
            if title in {a.lower() for a in aliases}:
                mapping[index] = column
    missing = [c for c in REQUIRED if c not in mapping.values()]
    if missing:
        raise RosterError(f"missing columns: {', '.join(missing)}")
    if len(raw) - 1 > MAX_ROWS:
        raise RosterError(f"more than {MAX_ROWS} rows")
    return [
        {
            column: str(row[i]).strip() if i < len(row) and row[i] is not None else ""
            for i, column in mapping.items()
        }
        for row in raw[1:]
    ]


def _csv_rows(data: bytes) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise RosterError("the CSV is neither UTF-8 nor GB18030")
    return [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]


def _xlsx_rows(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook  # only needed for XLSX

    try:
        sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
    except Exception as exc:
        raise RosterError("not a readable XLSX file") from exc
    return [list(row) for row in sheet.iter_rows(values_only=True) if any(c not in (None, "") for c in row)]


def read_photos(data: bytes) -> dict[str, bytes]:
    """Admission photos by student number, from a zip of files named `<学号>.jpg` (folders ignored)."""
    photos: dict[str, bytes] = {}
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise RosterError("the photo archive is not a zip file") from exc
    total = 0
    for info in archive.infolist():
        if info.is_dir() or info.file_size > MAX_PHOTO_BYTES:
            continue
        total += info.file_size
        if total > 2 * 1024 * 1024 * 1024:  # a zip bomb declares huge sizes: stop early
            raise RosterError("the photo archive is too large")
        stem = PurePosixPath(info.filename).stem.strip()
        if stem and not PurePosixPath(info.filename).name.startswith("."):
            photos[stem] = archive.read(info)
    return photos


def _image_ok(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > 40_000_000:
                return False
            image.verify()
        return True
    except Exception:
        return False


async def import_roster(
    database: Database,
    blobs: BlobStore,
    school_code: str,
    rows: list[dict[str, str]],
    photos: dict[str, bytes] | None = None,
    *,
    check_photo: PhotoChecker | None = None,
) -> ImportReport:
    """Validate every row, then upsert the good ones; returns the report of what happened."""
    report = ImportReport(school_code=school_code, rows=len(rows))
    students = database.db["students"]
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        number = unicodedata.normalize("NFKC", row.get("student_number", "")).strip()
        problem = _validate(row, number, seen)
        if problem:
            report.rejected.append(RowProblem(line, number or None, *problem))
            continue
        seen.add(number)
        photo = (photos or {}).get(number)
        if photo is not None and not _image_ok(photo):
            report.rejected.append(RowProblem(line, number, "photo_unreadable", "录取照片无法读取"))
            continue
        if photo is not None and check_photo is not None:
            verdict = check_photo(photo)
            if not verdict.ok:
                report.rejected.append(
                    RowProblem(
                        line, number, verdict.code or "photo_rejected", verdict.message or "录取照片不合格"
                    )
                )
                continue
        student_id = f"{school_code}:{number}"
        existing = await students.find_one({"_id": student_id})
        fields: dict[str, Any] = {
            "school_code": school_code,
            "student_number": number,
            "name": unicodedata.normalize("NFC", row["name"]).strip(),
            "id_last4": unicodedata.normalize("NFKC", row["id_last4"]).strip().upper(),
            "class_name": row.get("class_name", ""),
            "level": row.get("level", ""),
            "onsite_shot": _flag(row.get("onsite_shot", "")) or False,
        }
        if photo is not None:
            digest = hashlib.sha256(photo).hexdigest()
            if existing is None or existing.get("admission_photo_sha256") != digest:
                fields["admission_photo_blob_id"] = await blobs.put(
                    photo,
                    filename=f"admission-{student_id}",
                    content_type="image/jpeg",
                    kind="admission_photo",
                )
                fields["admission_photo_sha256"] = digest
                report.photos_stored += 1
                # The descriptor matching stored for the old photo (biometric data) no longer applies.
                await database.db["admission_descriptors"].delete_many({"_id": student_id})
        elif existing is None or not existing.get("admission_photo_blob_id"):
            report.warnings.append(
                RowProblem(line, number, "photo_missing", "缺少录取照片，人像比对前需补充")
            )
        if existing is None:
            await students.insert_one({"_id": student_id, "imported_at": utcnow(), **fields})
            report.created += 1
        elif any(existing.get(k) != v for k, v in fields.items()):
            await students.update_one({"_id": student_id}, {"$set": {**fields, "updated_at": utcnow()}})
            report.updated += 1
        else:
            report.unchanged += 1
    return report


def _flag(value: str) -> bool | None:
    word = unicodedata.normalize("NFKC", value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _validate(row: dict[str, str], number: str, seen: set[str]) -> tuple[str, str] | None:
    for column in REQUIRED:
        if not row.get(column, "").strip():
            return (
                "missing_field",
                f"缺少{ {'name': '姓名', 'student_number': '学号', 'id_last4': '证件号后4位'}[column] }",
            )
    if not number.isalnum() or len(number) > 32:
        return "bad_student_number", "学号格式不正确"
    if number in seen:
        return "duplicate_student_number", "文件中学号重复"
    if len(row["name"]) > 50 or any(ord(c) < 32 for c in row["name"]):
        return "bad_name", "姓名格式不正确"
    if not 1 <= len(row["id_last4"]) <= 8:
        return "bad_id_last4", "证件号后4位格式不正确"
    if _flag(row.get("onsite_shot", "")) is None:
        return "bad_onsite_flag", "是否参加现场拍摄应填“是”或“否”"
    return None
