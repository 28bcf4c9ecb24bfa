"""Idempotency keys against stuck applications (issue 13.4): every ordering of two keys and a repeat, for
codes (the real codec), photos and submissions (imaging and matching played on the real bus the way the
workers answer: the result event id derived from the incoming event id, claimed per consumer, so a
repeated input event is skipped as a duplicate exactly as the real workers skip it).

The defects: K1 → K2 → K1 left the application "正在识别采集码" for good (the third request re-used the
first scan's id; the codec republished its stored outcome under the original event id and the gateway
skipped it as done); S1 → S2 → S1 left it `submitted` (photo.confirmed under the first submission's event
id, skipped by matching).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from services.gateway.console.operators import Role
from shared.bus import Subscription
from shared.config import Settings
from shared.events import (
    Envelope,
    MatchScored,
    PhotoConfirmed,
    PhotoStandardized,
    PhotoSubmitted,
    QualityMeasure,
    derived_id,
    make_event,
)
from shared.runtime import Runtime
from tests.conftest import free_port
from tests.support.codes import RECORD, code_text
from tests.support.console import operator
from tests.support.photos import photo_jpeg
from tests.support.system import ROSTER_ROW, System, running_system, settings_from

pytestmark = pytest.mark.slow

# Two keys and a repeat: every distinct order of [first, first, second].
ORDERINGS = sorted(set(itertools.permutations(["K1", "K1", "K2"])))
# A roster student per ordering (one WeChat account per student).
ROWS = [{**ROSTER_ROW, "student_number": f"21102160{60 + n}"} for n in range(len(ORDERINGS))]


def claim_of(row: dict[str, str]) -> dict[str, str]:
    return {"name": row["name"], "student_number": row["student_number"], "id_last4": row["id_last4"]}


def code_of(row: dict[str, str]) -> str:
    """One scan of the student's code (each encryption differs, so a retry sends the same text)."""
    return code_text(RECORD.model_copy(update={"student_number": row["student_number"]}))


@asynccontextmanager
async def played_workers(env: dict[str, str], system: System, *, score: float) -> AsyncIterator[None]:
    """Imaging and matching as the workers answer: a result per input event, its id derived from it."""
    runtime = Runtime(settings_from(env, Settings, service_name="played-workers", http_port=free_port()))
    await runtime.start()

    async def standardise(payload: PhotoSubmitted, envelope: Envelope) -> list[Envelope]:
        blob_id = await system.gateway.blobs.put(
            photo_jpeg(480, 640), filename="std", content_type="image/jpeg"
        )
        measure = QualityMeasure(code="single_face", raw=1.0, score=100.0, passed=True)
        result = PhotoStandardized(
            photo_id=payload.photo_id, standardized_blob_id=blob_id, measures=[measure]
        )
        return [
            make_event(
                result, application_id=envelope.application_id, event_id=derived_id("imaging", envelope.id)
            )
        ]

    async def compare(payload: PhotoConfirmed, envelope: Envelope) -> list[Envelope]:
        result = MatchScored(
            photo_id=payload.photo_id,
            student_id=payload.student_id,
            score=score,
            passed=score >= payload.pass_mark,
            engine="played",
            pass_mark=payload.pass_mark,
        )
        return [
            make_event(
                result, application_id=envelope.application_id, event_id=derived_id("matching", envelope.id)
            )
        ]

    imaging, matching = Subscription("imaging"), Subscription("matching")
    imaging.on(PhotoSubmitted)(standardise)
    matching.on(PhotoConfirmed)(compare)
    await runtime.consume(imaging)
    await runtime.consume(matching)
    try:
        yield
    finally:
        await runtime.shutdown()


def photo_form(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("source", "camera")
    form.add_field("image", data, filename="photo.jpg", content_type="image/jpeg")
    return form


async def test_codes_k1_k2_k1_leaves_the_application_stuck_recognising_the_code(env):
    """Every ordering of a typo (K1) and a correct code (K2) and a retry of one: nothing ends pending."""
    async with running_system(env, roster=ROWS) as system:
        for n, ordering in enumerate(ORDERINGS):
            student = await system.student(f"o-keys-code-{n}")
            qr_text, claim = code_of(ROWS[n]), claim_of(ROWS[n])
            answers: dict[str, Any] = {}
            for key in ordering:
                fields = {**claim, "name": "李四"} if key == "K1" else claim
                status, body = await student.request(
                    "POST",
                    "/api/v1/codes",
                    json={**fields, "agreed": True, "qr_text": qr_text},
                    headers={"Idempotency-Key": key},
                )
                assert status == 202, (ordering, body)
                if key in answers:
                    assert body == answers[key], ordering  # the first answer, nothing new
                else:
                    answers[key] = body
                    await student.wait_for_scan(body["scan_id"])
            current = await student.wait_for_state("code_verified", "code_rejected")
            assert current["state"] == "code_verified", (
                ordering,
                current,
            )  # K2 verified, whatever came after
            assert answers["K1"]["scan_id"] != answers["K2"]["scan_id"]
            # The same key with another request is refused and changes nothing.
            status, body = await student.request(
                "POST",
                "/api/v1/codes",
                json={**claim, "agreed": True, "qr_text": qr_text},
                headers={"Idempotency-Key": "K1"},
            )
            assert (status, body["code"]) == (409, "idempotency_key_reused")
            assert (await student.status())["state"] == "code_verified"


async def test_photos_every_ordering_of_two_keys_and_a_repeat_ends_standardised(env):
    async with running_system(env, roster=ROWS) as system, played_workers(env, system, score=91.0):
        images = {"K1": photo_jpeg(), "K2": photo_jpeg(640, 800)}
        for n, ordering in enumerate(ORDERINGS):
            student = await system.paid_student(f"o-keys-photo-{n}", ROWS[n])
            answers: dict[str, Any] = {}
            for key in ordering:
                status, body = await student.request(
                    "POST", "/api/v1/photos", data=photo_form(images[key]), headers={"Idempotency-Key": key}
                )
                assert status == 202, (ordering, body)
                assert answers.setdefault(key, body) == body, ordering
            for _ in range(200):
                current = await student.status()
                if all(p["status"] == "standardized" for p in current["photos"]):
                    break
                await asyncio.sleep(0.05)
            assert sorted(p["photo_id"] for p in current["photos"]) == sorted(
                a["photo_id"] for a in answers.values()
            )
            assert all(p["status"] == "standardized" for p in current["photos"]), (
                ordering,
                current["photos"],
            )
            assert current["quota"]["standardisations_left"] == 1  # two keys, two slots; the repeat took none
            status, body = await student.request(
                "POST", "/api/v1/photos", data=photo_form(images["K2"]), headers={"Idempotency-Key": "K1"}
            )
            assert (status, body["code"]) == (409, "idempotency_key_reused")


async def test_submissions_s1_s2_s1_leaves_the_application_stuck_submitted(env):
    async with running_system(env, roster=ROWS) as system, played_workers(env, system, score=62.0):
        for n, ordering in enumerate(ORDERINGS):
            student = await system.paid_student(f"o-keys-submit-{n}", ROWS[n])
            photo_ids = {}
            for key, size in (("K1", (600, 800)), ("K2", (640, 800))):
                status, body = await student.request(
                    "POST", "/api/v1/photos", data=photo_form(photo_jpeg(*size))
                )
                assert status == 202, body
                photo_ids[key] = body["photo_id"]
            for _ in range(200):
                if all(p["status"] == "standardized" for p in (await student.status())["photos"]):
                    break
                await asyncio.sleep(0.05)
            answers: dict[str, Any] = {}
            for key in ordering:
                body = {"photo_id": photo_ids[key], "admission_photo_confirmed": True}
                status, answer = await student.request(
                    "POST", "/api/v1/submissions", json=body, headers={"Idempotency-Key": key}
                )
                assert status == 202, (ordering, answer)
                assert answers.setdefault(key, answer) == answer, ordering
                # Below the pass mark: the student may submit again (match_failed), never stuck in submitted.
                await student.wait_for_state("match_failed")
            db = system.gateway.database.db
            stored = await db["applications"].find_one({"_id": (await student.status())["application_id"]})
            assert stored["submission"]["count"] == 2, ordering  # two keys, two submissions; the repeat none
            status, answer = await student.request(
                "POST",
                "/api/v1/submissions",
                json={"photo_id": photo_ids["K2"], "admission_photo_confirmed": True},
                headers={"Idempotency-Key": "K1"},
            )
            assert (status, answer["code"]) == (409, "idempotency_key_reused")


async def test_submissions_s1_s2_s1_from_rejected_spends_a_free_resubmission(env):
    """After 审核未通过, a retry of the first submission's request spends nothing and re-runs nothing."""
    async with running_system(env, roster=ROWS[:1]) as system, played_workers(env, system, score=91.0):
        reviewer = await operator(system, "reviewer@example.com", Role.REVIEWER, ["10487"])
        student = await system.paid_student("o-keys-rejected", ROWS[0])
        application_id = (await student.status())["application_id"]
        status, photo = await student.request("POST", "/api/v1/photos", data=photo_form(photo_jpeg()))
        assert status == 202, photo
        for _ in range(200):
            if all(p["status"] == "standardized" for p in (await student.status())["photos"]):
                break
            await asyncio.sleep(0.05)
        body = {"photo_id": photo["photo_id"], "admission_photo_confirmed": True}

        async def submit_and_reject(key: str) -> dict[str, Any]:
            status, answer = await student.request(
                "POST", "/api/v1/submissions", json=body, headers={"Idempotency-Key": key}
            )
            assert status == 202, answer
            await student.wait_for_state("in_review")
            decision = {"decision": "rejected", "reason_code": "background"}
            status, reply = await reviewer.request(
                "POST", f"/console/api/v1/reviews/{application_id}/decision", json=decision
            )
            assert status == 200, reply
            return dict(answer)

        first = await submit_and_reject("S1")
        assert first["resubmissions_left"] == 2
        second = await submit_and_reject("S2")
        assert second["resubmissions_left"] == 1  # from rejected: one of the two free ones
        status, again = await student.request(
            "POST", "/api/v1/submissions", json=body, headers={"Idempotency-Key": "S1"}
        )
        assert (status, again) == (202, first)  # the first answer; nothing spent, nothing re-run
        current = await student.status()
        assert current["state"] == "rejected" and current["resubmissions_left"] == 1
