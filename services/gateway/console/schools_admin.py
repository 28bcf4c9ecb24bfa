"""Schools in the console: read and edit a school's configuration (validated as SchoolConfig), and import
its roster with admission photos. Uploads are hostile until proven otherwise: sizes are capped while
reading, archives are checked for unsafe names and inflated sizes before anything unpacks them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ValidationError

from services.gateway.console.auth import CONSOLE, SIGNED_IN, roles
from services.gateway.console.cases import PREFIX
from services.gateway.console.operators import Operator, Role
from services.gateway.context import BLOBS, DATABASE, SCHOOLS
from services.gateway.http.bodies import json_object, validation_error
from services.gateway.http.errors import MALFORMED_BODY, ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.roster import RosterError, import_roster, read_photos, read_rows
from services.gateway.schools import SchoolConfig

api = Api()
# What an archive may inflate to (an XLSX is a zip too): refuses zip bombs before unpacking.
MAX_INFLATED_BYTES = 512 * 1024 * 1024
MAX_INFLATION_RATIO = 200


class SchoolSummary(BaseModel):
    school_code: str
    name: str


class SchoolList(BaseModel):
    schools: list[SchoolSummary]


class RowProblemView(BaseModel):
    row: int
    student_number: str | None
    code: str
    message: str


class ImportReportView(BaseModel):
    ok: bool
    school_code: str
    rows: int
    created: int
    updated: int
    unchanged: int
    photos_stored: int
    rejected: list[RowProblemView]
    warnings: list[RowProblemView]


async def _visible_school(request: web.Request, who: Operator) -> SchoolConfig:
    code = request.match_info["school_code"]
    school = await request.app[SCHOOLS].get(code) if who.sees(code) and len(code) <= 20 else None
    if school is None:
        raise ApiError(404, "not_found")
    return school


@api.route("GET", f"{PREFIX}/schools", summary="The schools I may see", response=SchoolList, auth=SIGNED_IN)
async def list_schools(request: web.Request, *, who: Operator) -> web.Response:
    cursor = request.app[DATABASE].db["schools"].find(who.school_filter("_id"), {"name": 1}).sort("_id", 1)
    schools = [SchoolSummary(school_code=d["_id"], name=d.get("name", "")) async for d in cursor]
    return json_response(SchoolList(schools=schools).model_dump())


@api.route(
    "GET",
    f"{PREFIX}/schools/{{school_code}}",
    summary="A school's configuration: fee, texts, options, pass mark, rules",
    response=SchoolConfig,
    errors=("not_found",),
    auth=SIGNED_IN,
)
async def get_school(request: web.Request, *, who: Operator) -> web.Response:
    return json_response((await _visible_school(request, who)).model_dump())


class SchoolConfigSchema(BaseModel):
    json_schema: dict[str, Any]


@api.route(
    "GET",
    f"{PREFIX}/school-config/schema",
    summary="The JSON schema a school configuration is validated against (the settings form's constraints)",
    response=SchoolConfigSchema,
    auth=SIGNED_IN,
)
async def school_config_schema(request: web.Request, *, who: Operator) -> web.Response:
    # The page's form takes its limits (lengths, ranges, choices) from here: one source with the server.
    return json_response(SchoolConfigSchema(json_schema=SchoolConfig.model_json_schema()).model_dump())


@api.route(
    "PUT",
    f"{PREFIX}/schools/{{school_code}}",
    summary="Replace a school's configuration (admins only); validated as a whole",
    body=SchoolConfig,
    response=SchoolConfig,
    errors=("forbidden", "csrf_failed", "not_found"),
    auth=roles(Role.ADMIN),
)
async def put_school(request: web.Request, *, who: Operator) -> web.Response:
    current = await _visible_school(request, who)
    try:
        config = SchoolConfig.model_validate(await json_object(request))
    except ValidationError as exc:
        raise validation_error(exc) from exc
    if config.school_code != current.school_code:
        raise ApiError(
            400, "invalid_request", fields=[{"field": "school_code", "error": "must match the path"}]
        )
    before, after = current.model_dump(), config.model_dump()
    changed = sorted(k for k in after if before.get(k) != after[k])
    await request.app[SCHOOLS].put(config)
    await request.app[CONSOLE].audit.record(
        request, who, "school.update", school_code=config.school_code, changed=changed
    )
    return json_response(after)


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, "import_too_large", limit_bytes=limit)
    return bytes(data)


def check_archive(data: bytes, *, names_matter: bool) -> None:
    """Refuse what unpacking could turn against us: traversal names and inflation bombs."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return  # not a zip: the reader says what is wrong with it
    inflated = 0
    for info in archive.infolist():
        name = info.filename
        if names_matter and (
            name.startswith(("/", "\\"))
            or ".." in PurePosixPath(name).parts
            or ".." in PureWindowsPath(name).parts
            or PureWindowsPath(name).drive
        ):
            raise ApiError(400, "unsafe_archive", name=name[:200])
        inflated += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_INFLATION_RATIO:
            raise ApiError(413, "import_too_large", name=name[:200])
    if inflated > MAX_INFLATED_BYTES:
        raise ApiError(413, "import_too_large")


def _parse(
    roster: bytes, filename: str, photos: bytes | None
) -> tuple[list[dict[str, str]], dict[str, bytes] | None]:
    if filename.lower().endswith(".xlsx"):
        check_archive(roster, names_matter=False)
    if photos is not None:
        check_archive(photos, names_matter=True)
    try:
        return read_rows(roster, filename), read_photos(photos) if photos is not None else None
    except (RosterError, csv.Error, zipfile.BadZipFile, ValueError, KeyError, EOFError) as exc:
        raise ApiError(400, "roster_invalid", reason=str(exc)[:200]) from exc


@api.route(
    "POST",
    f"{PREFIX}/schools/{{school_code}}/roster",
    summary="Import a roster (CSV or XLSX) with an optional zip of admission photos; returns the report",
    multipart={"roster": "binary", "photos": "binary"},
    response=ImportReportView,
    errors=("forbidden", "csrf_failed", "not_found", "import_too_large", "roster_invalid", "unsafe_archive"),
    auth=roles(Role.ADMIN, Role.SUPPORT),
)
async def import_school_roster(request: web.Request, *, who: Operator) -> web.Response:
    school = await _visible_school(request, who)
    limit = request.app[CONSOLE].settings.console_max_import_bytes
    if (request.content_length or 0) > 2 * limit + 64 * 1024:
        raise ApiError(413, "import_too_large", limit_bytes=limit)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type")
    files: dict[str, tuple[str, bytes]] = {}
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:  # no boundary, or not a multipart body at all
        raise ApiError(400, "invalid_request", fields=[MALFORMED_BODY]) from exc
    while (part := await reader.next()) is not None:
        if (
            not isinstance(part, BodyPartReader)
            or part.name not in ("roster", "photos")
            or part.name in files
        ):
            raise ApiError(
                400, "invalid_request", fields=[{"field": "multipart", "error": "unexpected part"}]
            )
        files[part.name] = (part.filename or "", await _read_part(part, limit))
    if "roster" not in files:
        raise ApiError(400, "invalid_request", fields=[{"field": "roster", "error": "missing"}])
    filename, roster = files["roster"]
    photos = files["photos"][1] if "photos" in files else None
    # Parsing a 50,000-row workbook takes a while: off the event loop.
    rows, admission_photos = await asyncio.to_thread(_parse, roster, filename, photos)
    report = await import_roster(
        request.app[DATABASE], request.app[BLOBS], school.school_code, rows, admission_photos
    )
    result: dict[str, Any] = {"ok": not report.rejected, **report.as_dict()}
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "roster.import",
        school_code=school.school_code,
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        rejected=len(report.rejected),
    )
    return json_response(ImportReportView.model_validate(result).model_dump())
