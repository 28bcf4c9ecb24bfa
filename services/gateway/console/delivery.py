"""Delivery (seed step 14): approved applications go out in per-school batches, each with its CHSI upload
package, its print sheets and its mailing list; printing and mailing are marked on the batch.

Admins and support staff of the school only (reviewers: 403; another school, or a batch of another
school: 404); every call is audited, downloads included. How batches stay exclusive and complete under
concurrency and crashes: batches.py. The files: exports.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.console import exports
from services.gateway.console.auth import CONSOLE, roles
from services.gateway.console.batches import Batches
from services.gateway.console.cases import PREFIX
from services.gateway.console.operators import Operator, Role
from services.gateway.context import APPLICATIONS, BLOBS, DATABASE, SCHOOLS
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.registry import Api
from services.gateway.schools import SchoolConfig
from shared.db import Document
from shared.logging import mask_name

api = Api()
DELIVERERS = (Role.ADMIN, Role.SUPPORT)
# School staff download their school's files and see its batches; they make and mark none.
READERS = (*DELIVERERS, Role.SCHOOL)
BATCHES = f"{PREFIX}/schools/{{school_code}}/delivery/batches"


class DownloadView(BaseModel):
    count: int
    first_at: datetime | None
    last_at: datetime | None
    last_by: str | None


class RefusalView(BaseModel):
    application_id: str
    reason: str


class BatchView(BaseModel):
    batch_id: str
    school_code: str
    state: Literal["open", "closed"]
    created_at: datetime
    created_by: str
    created_by_email: str | None = None  # the operator's email, when the account still exists
    count: int
    printed_at: datetime | None
    mailed_at: datetime | None
    downloads: dict[str, DownloadView]
    refused: list[RefusalView]


class BatchMember(BaseModel):
    application_id: str
    student_number: str
    name: str  # masked: 赵**
    file_name: str | None


class BatchDetail(BatchView):
    applications: list[BatchMember]
    withdrawn: list[str] = Field(
        default_factory=list, description="applications of the batch refunded since: left out of its files"
    )


class DeliveryOverview(BaseModel):
    school_code: str
    ready: int
    batches: list[BatchView]


class CreateBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MarkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Literal["printed", "mailed"]


def batch_view(batch: Document, emails: dict[str, str] | None = None) -> BatchView:
    return BatchView(
        batch_id=batch["_id"],
        school_code=batch["school_code"],
        state=batch["state"],
        created_at=batch["created_at"],
        created_by=batch["created_by"],
        created_by_email=(emails or {}).get(batch["created_by"]),
        count=int(batch.get("count", 0)),
        printed_at=(batch.get("marks") or {}).get("printed_at"),
        mailed_at=(batch.get("marks") or {}).get("mailed_at"),
        downloads={k: DownloadView(**v) for k, v in (batch.get("downloads") or {}).items()},
        refused=[RefusalView(**r) for r in batch.get("refused") or []],
    )


async def _school(request: web.Request, who: Operator) -> SchoolConfig:
    code = request.match_info["school_code"]
    school = await request.app[SCHOOLS].get(code) if len(code) <= 20 and who.sees(code) else None
    if school is None:
        raise ApiError(404, "not_found")
    return school


def _batches(request: web.Request) -> Batches:
    return Batches(request.app[DATABASE], request.app[APPLICATIONS])


async def _batch(request: web.Request, batches: Batches, school: SchoolConfig) -> Document:
    """The batch in the path if it is this school's (else 404), finished first if its creator crashed."""
    batch_id = request.match_info["batch_id"]
    await batches.recover(school.school_code)
    batch = await batches.get(batch_id) if len(batch_id) <= 64 else None
    if batch is None or batch["school_code"] != school.school_code:
        raise ApiError(404, "not_found")
    if batch["state"] != "closed":
        raise ApiError(409, "batch_open")
    return batch


@api.route(
    "GET",
    f"{PREFIX}/schools/{{school_code}}/delivery",
    summary="Delivery of a school: how many approved applications wait, and the batches made",
    response=DeliveryOverview,
    errors=("forbidden", "not_found"),
    auth=roles(*READERS),
)
async def delivery_overview(request: web.Request, *, who: Operator) -> web.Response:
    school = await _school(request, who)
    batches = _batches(request)
    await batches.recover(school.school_code)
    listed = await batches.of_school(school.school_code)
    emails = await request.app[CONSOLE].operators.emails({b["created_by"] for b in listed})
    reply = DeliveryOverview(
        school_code=school.school_code,
        ready=await batches.ready(school.school_code),
        batches=[batch_view(b, emails) for b in listed],
    )
    await request.app[CONSOLE].audit.record(
        request, who, "delivery.view", school_code=school.school_code, ready=reply.ready
    )
    return json_response(reply.model_dump(mode="json"))


@api.route(
    "POST",
    BATCHES,
    summary="Put every ready approved application of the school (1,000 at most) into a new batch",
    body=CreateBatchRequest,
    response=BatchView,
    status=201,
    errors=("forbidden", "csrf_failed", "not_found", "nothing_to_deliver"),
    auth=roles(*DELIVERERS),
)
async def create_batch(request: web.Request, *, who: Operator, body: CreateBatchRequest) -> web.Response:
    school = await _school(request, who)
    batches = _batches(request)
    await batches.recover(school.school_code)
    database, blobs = request.app[DATABASE], request.app[BLOBS]

    names: set[str] = set()

    async def check(application: Document) -> str | None:
        # The photo and the file name are checked before the claim: a wrong one stays out, reported.
        [item] = await exports.items_of(database, school, [application])
        await exports.load_photos(blobs, [item])
        if item.problem is None and item.file_name is not None:
            if item.file_name.lower() in names:
                return "file_name_duplicate"
            names.add(item.file_name.lower())
        return item.problem

    created = await batches.create(school.school_code, who.operator_id, check)
    refused = [{"application_id": r.application_id, "reason": r.reason} for r in created.refused]
    audit = request.app[CONSOLE].audit
    if created.batch is None:
        await audit.record(
            request,
            who,
            "delivery.batch_create",
            outcome="refused",
            school_code=school.school_code,
            refused=len(refused),
        )
        raise ApiError(409, "nothing_to_deliver", refused=refused)
    batch = created.batch
    await audit.record(
        request,
        who,
        "delivery.batch_create",
        school_code=school.school_code,
        batch_id=batch["_id"],
        count=batch["count"],
        refused=len(refused),
    )
    return json_response(batch_view(batch).model_dump(mode="json"), status=201)


@api.route(
    "GET",
    f"{BATCHES}/{{batch_id}}",
    summary="A batch with its applications (student number, masked name, upload file name)",
    response=BatchDetail,
    errors=("forbidden", "not_found", "batch_open"),
    auth=roles(*READERS),
)
async def get_batch(request: web.Request, *, who: Operator) -> web.Response:
    school = await _school(request, who)
    batches = _batches(request)
    batch = await _batch(request, batches, school)
    items = await exports.items_of(request.app[DATABASE], school, await batches.members(batch["_id"]))
    members = [
        BatchMember(
            application_id=i.application_id,
            student_number=i.student_number,
            name=mask_name(i.name),
            file_name=i.file_name,
        )
        for i in items
    ]
    await request.app[CONSOLE].audit.record(
        request, who, "delivery.batch_view", school_code=school.school_code, batch_id=batch["_id"]
    )
    reply = BatchDetail(
        **batch_view(batch).model_dump(),
        applications=members,
        withdrawn=await batches.withdrawn(batch["_id"]),
    )
    return json_response(reply.model_dump(mode="json"))


async def _target(request: web.Request, who: Operator) -> tuple[SchoolConfig, Batches, Document]:
    school = await _school(request, who)
    batches = _batches(request)
    return school, batches, await _batch(request, batches, school)


async def _counted(
    request: web.Request, who: Operator, batches: Batches, batch: Document, kind: str, outcome: str = "ok"
) -> None:
    """Every download is counted on the batch and audited (a refused one audited as failed)."""
    if outcome == "ok":
        await batches.record_download(batch["_id"], kind, who.operator_id)
    await request.app[CONSOLE].audit.record(
        request,
        who,
        "delivery.download",
        outcome=outcome,
        school_code=batch["school_code"],
        batch_id=batch["_id"],
        kind=kind,
        count=batch["count"],
    )


async def _loaded(
    request: web.Request, who: Operator, kind: str
) -> tuple[SchoolConfig, Document, list[exports.Item]]:
    """The batch's items with their photos, all checked before anything is sent."""
    school, batches, batch = await _target(request, who)
    items = await exports.items_of(request.app[DATABASE], school, await batches.members(batch["_id"]))
    await exports.load_photos(request.app[BLOBS], items)
    problems = [{"application_id": i.application_id, "reason": i.problem} for i in items if i.problem]
    if problems:
        # Checked when the batch was made: a photo erased or the template changed since. Nothing is sent.
        await _counted(request, who, batches, batch, kind, outcome="failed")
        raise ApiError(409, "delivery_photo_invalid", problems=problems)
    await _counted(request, who, batches, batch, kind)
    return school, batch, items


@api.route(
    "GET",
    f"{BATCHES}/{{batch_id}}/chsi.zip",
    summary="The CHSI upload package: 480×640 JPEGs named per the school's rule, and manifest.csv (audited)",
    binary="application/zip",
    errors=("forbidden", "not_found", "batch_open", "delivery_photo_invalid"),
    auth=roles(*READERS),
)
async def download_chsi(request: web.Request, *, who: Operator) -> web.StreamResponse:
    school, batch, items = await _loaded(request, who, "chsi")
    name = f"chsi-{school.school_code}-{batch['_id']}.zip"
    return await exports.stream_zip(request, name, exports.chsi_entries(items, school))


@api.route(
    "GET",
    f"{BATCHES}/{{batch_id}}/print.zip",
    summary="Print sheets (6-inch, 300 dpi, the school's print size), one per student (audited)",
    binary="application/zip",
    errors=("forbidden", "not_found", "batch_open", "delivery_photo_invalid"),
    auth=roles(*READERS),
)
async def download_print(request: web.Request, *, who: Operator) -> web.StreamResponse:
    school, batch, items = await _loaded(request, who, "print")
    name = f"print-{school.school_code}-{batch['_id']}.zip"
    return await exports.stream_zip(request, name, exports.print_entries(items, school))


@api.route(
    "GET",
    f"{BATCHES}/{{batch_id}}/mailing.csv",
    summary="The mailing list: one row per student with the mailing method chosen at confirmation (audited)",
    binary="text/csv",
    errors=("forbidden", "not_found", "batch_open"),
    auth=roles(*READERS),
)
async def download_mailing(request: web.Request, *, who: Operator) -> web.Response:
    school, batches, batch = await _target(request, who)
    items = await exports.items_of(request.app[DATABASE], school, await batches.members(batch["_id"]))
    await _counted(request, who, batches, batch, "mailing")
    return web.Response(
        body=exports.mailing_list(items, school, batch["_id"]),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="mailing-{school.school_code}-{batch["_id"]}.csv"',
        },
    )


@api.route(
    "POST",
    f"{BATCHES}/{{batch_id}}/mark",
    summary="Mark the batch printed or mailed (mailed needs printed); a repeat keeps the first time",
    body=MarkRequest,
    response=BatchView,
    errors=("forbidden", "csrf_failed", "not_found", "batch_open", "delivery_not_printed"),
    auth=roles(*DELIVERERS),
)
async def mark_batch(request: web.Request, *, who: Operator, body: MarkRequest) -> web.Response:
    school = await _school(request, who)
    batches = _batches(request)
    batch = await _batch(request, batches, school)
    audit = request.app[CONSOLE].audit
    target = {"school_code": school.school_code, "batch_id": batch["_id"], "stage": body.stage}
    if body.stage == "mailed" and (batch.get("marks") or {}).get("printed_at") is None:
        await audit.record(request, who, "delivery.mark", outcome="refused", **target)
        raise ApiError(409, "delivery_not_printed")
    marked, first = await batches.mark(batch["_id"], body.stage)
    await audit.record(request, who, "delivery.mark", repeated=not first, **target)
    return json_response(batch_view(marked).model_dump(mode="json"))
