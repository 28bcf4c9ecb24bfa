"""The files of a delivery batch: the CHSI upload package, the print sheets and the mailing list.

- CHSI package: each application's standardised JPEG exactly as stored (checked: a JPEG, 480×640,
  at most 40 KB, as imaging makes it), named by the school's `chsi_file_name` template, plus
  `manifest.csv`.
- Print sheets: one 6-inch, 300 dpi sheet per student (shared/print_sheet.py: Pillow only).
- Mailing list: one row per student, by the mailing method chosen at confirmation.

CSV files are UTF-8 with a BOM (Excel opens them as UTF-8); a cell that a spreadsheet would read as a
formula (`=`, `+`, `-`, `@`, tab, CR) is prefixed with `'`. Zips are written entry by entry to the
response (print sheets are ~1 MB each: a batch of hundreds is never held in memory at once).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from services.gateway.console.batches import when
from services.gateway.schools import CHSI_NAME_RE, SchoolConfig
from shared.blobs import BlobNotFound, BlobStore
from shared.db import Database, Document
from shared.print_sheet import PRINT_SIZES, render_print_sheet

# The CHSI photo standard (services/imaging/config.py PhotoStandard): what imaging writes.
CHSI_SIZE = (480, 640)
CHSI_MAX_BYTES = 40 * 1024
BOM = "\ufeff"
MANIFEST_COLUMNS = (
    "file_name",
    "student_number",
    "name",
    "school_code",
    "school_name",
    "sha256",
    "bytes",
    "approved_at",
)
MAILING_COLUMNS = (
    "mailing_method",
    "mailing_method_code",
    "school_code",
    "school_name",
    "graduation_year",
    "level",
    "class_name",
    "student_number",
    "name",
    "print_size",
    "file_name",
    "batch_id",
)


@dataclass
class Item:
    """One application of a batch with what its files need."""

    application_id: str
    student_number: str
    name: str
    class_name: str
    level: str
    graduation_year: dict[str, str]
    mailing_method: dict[str, str]
    approved_at: datetime | None
    blob_id: str | None
    file_name: str | None = None
    photo: bytes | None = None
    problem: str | None = None


def photo_problem(data: bytes) -> str | None:
    """Why a stored photo may not go to CHSI, or None: it must be what imaging makes."""
    if len(data) > CHSI_MAX_BYTES:
        return f"photo_too_large: {len(data)} bytes > {CHSI_MAX_BYTES}"
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, size = image.format, image.size
            image.load()  # decodes it all: a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "photo_unreadable"
    if fmt != "JPEG":
        return f"photo_not_jpeg: {fmt}"
    if size != CHSI_SIZE:
        return f"photo_wrong_size: {size[0]}x{size[1]}, not 480x640"
    return None


def file_name(template: str, item: Item, school: SchoolConfig) -> str:
    """The upload name from the school's template; ValueError when it is not CHSI-safe."""
    name = template.format(
        student_number=item.student_number,
        school_code=school.school_code,
        graduation_year=item.graduation_year.get("code", ""),
    )
    if not CHSI_NAME_RE.fullmatch(name):
        raise ValueError("file_name_invalid")
    return name


def submitted_blob(application: Document) -> str | None:
    photo_id = (application.get("submission") or {}).get("photo_id")
    photo = (application.get("photos") or {}).get(photo_id) if photo_id else None
    blob = (photo or {}).get("standardized_blob_id")
    return str(blob) if blob else None


async def items_of(database: Database, school: SchoolConfig, applications: Sequence[Document]) -> list[Item]:
    """Applications with their students' details and file names (names checked, duplicates refused)."""
    ids = [a.get("student_id") for a in applications]
    students = {
        s["_id"]: s
        async for s in database.db["students"].find({"_id": {"$in": ids}}, {"admission_photo_blob_id": 0})
    }
    default_year = school.graduation_years[0].model_dump() if school.graduation_years else {}
    default_mailing = school.mailing_options[0].model_dump() if school.mailing_options else {}
    items: list[Item] = []
    seen: set[str] = set()
    for application in applications:
        student = students.get(application.get("student_id")) or {}
        confirmation = application.get("confirmation") or {}
        review = application.get("review") or {}
        approved = review.get("decided_at")
        item = Item(
            application_id=application["_id"],
            student_number=str(student.get("student_number") or ""),
            name=str(student.get("name") or ""),
            class_name=str(student.get("class_name") or ""),
            level=str(student.get("level") or ""),
            graduation_year=dict(confirmation.get("graduation_year") or default_year),
            mailing_method=dict(confirmation.get("mailing_method") or default_mailing),
            approved_at=when(approved) if isinstance(approved, datetime | str) else None,
            blob_id=submitted_blob(application),
        )
        if not student:
            item.problem = "student_missing"
        else:
            try:
                item.file_name = file_name(school.chsi_file_name, item, school)
            except (ValueError, KeyError):
                item.problem = "file_name_invalid"
            else:
                if item.file_name.lower() in seen:
                    item.problem = "file_name_duplicate"
                seen.add(item.file_name.lower())
        items.append(item)
    return items


async def load_photos(blobs: BlobStore, items: Iterable[Item]) -> None:
    """Read and check each photo (≤ 40 KB each); sets `photo` or `problem`."""
    for item in items:
        if item.problem:
            continue
        if item.blob_id is None:
            item.problem = "photo_missing"
            continue
        try:
            data = await blobs.get(item.blob_id)
        except BlobNotFound:
            item.problem = "photo_missing"
            continue
        item.problem = photo_problem(data)
        item.photo = data if item.problem is None else None


def _cell(value: Any) -> str:
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_bytes(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def manifest(items: Sequence[Item], school: SchoolConfig) -> bytes:
    return csv_bytes(
        MANIFEST_COLUMNS,
        (
            (
                i.file_name,
                i.student_number,
                i.name,
                school.school_code,
                school.name,
                hashlib.sha256(i.photo or b"").hexdigest(),
                len(i.photo or b""),
                i.approved_at,
            )
            for i in items
        ),
    )


def mailing_list(items: Sequence[Item], school: SchoolConfig, batch_id: str) -> bytes:
    ordered = sorted(items, key=lambda i: (i.mailing_method.get("code", ""), i.class_name, i.student_number))
    return csv_bytes(
        MAILING_COLUMNS,
        (
            (
                i.mailing_method.get("label", ""),
                i.mailing_method.get("code", ""),
                school.school_code,
                school.name,
                i.graduation_year.get("label", ""),
                i.level,
                i.class_name,
                i.student_number,
                i.name,
                school.print_size,
                i.file_name,
                batch_id,
            )
            for i in ordered
        ),
    )


def print_sheet(item: Item, school: SchoolConfig) -> bytes:
    assert item.photo is not None
    return render_print_sheet(
        item.photo, name=item.name, student_number=item.student_number, size=PRINT_SIZES[school.print_size]
    )


class _Sink:
    """What zipfile writes to: collects bytes until the response takes them (not seekable: zipfile then
    writes data descriptors and never seeks back)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


async def stream_zip(
    request: web.Request, download_name: str, entries: AsyncIterator[tuple[str, bytes]]
) -> web.StreamResponse:
    """Write the entries (already compressed JPEGs and small CSVs: stored, not deflated) to the response."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{download_name}"',
        }
    )
    await response.prepare(request)
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[call-overload]
        async for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=datetime.now().timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
            await response.write(sink.take())
    await response.write(sink.take())
    await response.write_eof()
    return response


async def chsi_entries(items: Sequence[Item], school: SchoolConfig) -> AsyncIterator[tuple[str, bytes]]:
    for item in items:
        assert item.file_name is not None and item.photo is not None
        yield item.file_name, item.photo
    yield "manifest.csv", manifest(items, school)


async def print_entries(items: Sequence[Item], school: SchoolConfig) -> AsyncIterator[tuple[str, bytes]]:
    ordered = sorted(items, key=lambda i: (i.mailing_method.get("code", ""), i.class_name, i.student_number))
    for item in ordered:
        assert item.file_name is not None
        # ~0.1-0.3 s of Pillow per sheet: off the event loop.
        yield item.file_name, await asyncio.to_thread(print_sheet, item, school)
