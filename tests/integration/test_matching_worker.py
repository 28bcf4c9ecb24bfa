"""The matching worker through the real broker and database: photo.confirmed.v1 → matches → match.scored.v1.

The worker runs in the test's event loop (shared.runtime.Runtime, as in tests/support/system.py);
nothing consumes match.scored.v1 here, so the results wait in the gateway's queue and are read from it.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aio_pika
import aiohttp
import pytest

from services.matching.config import MatchingSettings
from services.matching.engines import engine_for
from services.matching.handlers import INDEXES, MatchingHandlers
from shared.events import Envelope, PhotoConfirmed, derived_id, make_event
from shared.runtime import Runtime
from tests.conftest import free_port
from tests.support import matching_faces as faces
from tests.support.processes import ServiceProcess
from tests.support.system import settings_from

pytestmark = pytest.mark.slow
T = TypeVar("T")


@asynccontextmanager
async def matching_worker(env: dict[str, str], **overrides: Any) -> AsyncIterator[Runtime]:
    settings = settings_from(env, MatchingSettings, service_name="matching", **overrides)
    runtime = Runtime(settings, indexes=[INDEXES])
    await runtime.start()
    try:
        engine = await asyncio.to_thread(engine_for, settings)
        await runtime.consume(
            MatchingHandlers(runtime.database, runtime.blobs, settings, engine).subscription()
        )
        yield runtime
    finally:
        await runtime.shutdown()


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if (result := await check()) is not None:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _true_when(condition: bool) -> bool | None:
    return True if condition else None


class ResultQueue:
    """match.scored.v1 events as the gateway would receive them, taken off its queue."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self.events: list[Envelope] = []

    async def take(self, count: int) -> list[Envelope]:
        async def enough() -> list[Envelope] | None:
            conn = await aio_pika.connect(self._url)
            async with conn:
                queue = await (await conn.channel()).get_queue("gateway", ensure=True)
                while (msg := await queue.get(fail=False, no_ack=True)) is not None:
                    envelope = Envelope.from_bytes(msg.body)
                    if envelope.type == "match.scored.v1":
                        self.events.append(envelope)
            return self.events if len(self.events) >= count else None

        await eventually(enough)
        taken, self.events = self.events[:count], self.events[count:]
        return taken


async def put_photo(runtime: Runtime, data: bytes, name: str) -> str:
    return await runtime.blobs.put(data, filename=name, content_type="image/jpeg")


def confirmed(photo_id: str, student_id: str, photo_blob: str, admission_blob: str, **extra: Any) -> Envelope:
    return make_event(
        PhotoConfirmed(
            photo_id=photo_id,
            student_id=student_id,
            standardized_blob_id=photo_blob,
            admission_photo_blob_id=admission_blob,
            **extra,
        ),
        application_id=f"app-{student_id}",
        trace={"request_id": f"req-{photo_id}"},
    )


async def test_a_confirmed_photo_is_scored_stored_once_and_republished_identically(env, amqp_url):
    people = faces.people()
    results = ResultQueue(amqp_url)
    # The photo is the admission photo rotated, which the reuse check refuses (test_matching_worker_reuse.py):
    # off here, where scoring, storing and republishing are the subject.
    async with matching_worker(env, matching_reuse_check=False) as worker:
        # The counters are process-wide: other tests in this process count too, so compare before/after.
        passed_before = await _passed_count(worker.http_port)
        admission = await put_photo(worker, faces.jpeg(people["astronaut"]), "admission.jpg")
        photo = await put_photo(
            worker, faces.variants(people["astronaut"])["rotated -6 degrees"], "photo.jpg"
        )
        event = confirmed("photo-1", "student-1", photo, admission, pass_mark=85.0)
        await worker.bus.publish(event)
        [first] = await results.take(1)

        matches = worker.database.db["matches"]
        doc = await matches.find_one({"_id": "photo-1"})
        assert doc is not None
        assert doc["status"] == "scored" and doc["passed"] is True and doc["score"] >= 85
        assert doc["engine"] == "dlib" and doc["model"].startswith("dlib_face_recognition_resnet_model_v1@")
        assert doc["pass_mark"] == 85.0 and doc["reason"] is None
        assert doc["faces_found"] == {"photo": 1, "admission_photo": 1}
        assert {"decode", "detect", "align", "embed", "total"} <= set(doc["timings_ms"])
        assert doc["failed_compliant_photos"] == 0 and doc["needs_registrar"] is False
        assert "embedding" not in str(doc)  # biometric templates are never stored

        assert first.id == derived_id("matching", event.id) == doc["result_event_id"]
        assert first.application_id == "app-student-1" and first.trace == event.trace
        data = first.data
        assert data["photo_id"] == "photo-1" and data["student_id"] == "student-1"
        assert (data["score"], data["passed"], data["engine"]) == (doc["score"], True, "dlib")
        assert data["model"] == doc["model"] and data["pass_mark"] == 85.0
        assert data["reason"] is None and data["needs_registrar"] is False
        assert "通过" in data["message"]

        # The same event again (a redelivery): the stored outcome is republished under the same event id
        # (the gateway skips it), not compared again; the matching worker takes no claim.
        await worker.bus.publish(event)
        [again] = await results.take(1)
        assert again.id == first.id and again.data == first.data
        assert await matches.count_documents({}) == 1
        assert await worker.database.db["processed_events"].count_documents({"consumer": "matching"}) == 0

        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{worker.http_port}/metrics") as resp,
        ):
            metrics = await resp.text()
        assert await _passed_count(worker.http_port) == passed_before + 1
        assert 'matching_stage_seconds_count{engine="dlib",stage="embed"}' in metrics


async def test_the_case_goes_to_the_registrar_after_three_failed_compliant_photos(env, amqp_url):
    people = faces.people()
    results = ResultQueue(amqp_url)
    async with matching_worker(env) as worker:
        admission = await put_photo(worker, faces.jpeg(people["group4"]), "admission.jpg")
        someone_else = await put_photo(worker, faces.jpeg(people["group3"]), "other.jpg")
        no_face = await put_photo(worker, faces.jpeg(faces.no_face()), "cat.jpg")
        # Another student's failures do not count for this one.
        other_admission = await put_photo(worker, faces.jpeg(people["group0"]), "admission-2.jpg")
        await worker.bus.publish(confirmed("other-1", "student-2", someone_else, other_admission))
        [other] = await results.take(1)
        assert other.data["failed_compliant_photos"] == 1

        outcomes = []
        for n, blob in enumerate([someone_else, no_face, someone_else, someone_else], start=1):
            await worker.bus.publish(confirmed(f"photo-{n}", "student-1", blob, admission))
            [result] = await results.take(1)  # one at a time: each count sees the ones before
            outcomes.append(result.data)
        summary = [
            (o["passed"], o["reason"], o["failed_compliant_photos"], o["needs_registrar"]) for o in outcomes
        ]
        assert summary == [
            (False, None, 1, False),
            (False, "photo_no_face", 1, False),  # not a compliant photo: it does not count
            (False, None, 2, False),
            (False, None, 3, True),
        ]
        assert all(o["score"] < 80 for o in outcomes)
        assert "学籍部门" in outcomes[-1]["message"] and "3张" in outcomes[-1]["message"]
        assert "换一张" in outcomes[0]["message"]
        queue = worker.database.db["matches"].find({"needs_registrar": True}, {"_id": 1})
        assert [doc["_id"] async for doc in queue] == ["photo-4"]


async def test_bad_admission_photos_go_to_the_registrar_with_a_reason(env, amqp_url):
    people = faces.people()
    results = ResultQueue(amqp_url)
    async with matching_worker(env, matching_registrar_after_failures=5) as worker:
        photo = await put_photo(worker, faces.jpeg(people["group2"]), "photo.jpg")
        two_faces = await put_photo(
            worker, faces.jpeg(faces.side_by_side(people["group0"], people["group5"])), "admission.jpg"
        )
        cases = [
            ("p-missing", photo, "000000000000000000000000", "admission_photo_missing", True),
            ("p-two", photo, two_faces, "admission_photo_multiple_faces", True),
            ("p-bad-id", "not-a-blob-id", photo, "photo_missing", False),
        ]
        for photo_id, photo_blob, admission_blob, _, _ in cases:
            await worker.bus.publish(confirmed(photo_id, "student-3", photo_blob, admission_blob))
        got = {e.data["photo_id"]: e.data for e in await results.take(len(cases))}
        for photo_id, _, _, reason, registrar in cases:
            data = got[photo_id]
            assert (data["reason"], data["needs_registrar"], data["passed"], data["score"]) == (
                reason,
                registrar,
                False,
                0.0,
            ), photo_id
            assert data["message"], photo_id
        doc = await worker.database.db["matches"].find_one({"_id": "p-two"})
        assert doc is not None
        assert doc["status"] == "failed" and doc["score"] is None
        assert doc["faces_found"] == {"photo": 1, "admission_photo": 2}


async def test_the_worker_process_is_ready_only_with_its_models_and_drains_on_sigterm(env, subprocess_env):
    port = free_port()
    worker = await ServiceProcess("services.matching", {**subprocess_env, "HTTP_PORT": str(port)}).start()
    try:
        ready = await worker.wait_for_log("matching ready", timeout=60)
        assert ready["engine"] == "dlib" and ready["model"].startswith(
            "dlib_face_recognition_resnet_model_v1@"
        )
        assert ready["pass_threshold"] == pytest.approx(0.6)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                body = await resp.json()
                assert resp.status == 200, body
                assert body["checks"] == {"database": True, "broker": True, "consuming": True}
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert (await resp.json())["service"] == "matching"
        worker.signal(signal.SIGTERM)
        assert await worker.wait() == 0
    finally:
        await worker.stop()


async def _passed_count(http_port: int) -> float:
    """matching_outcomes_total{outcome="passed"} as the worker's /metrics reads now (0 before any)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{http_port}/metrics") as resp,
    ):
        metrics = await resp.text()
    found = re.search(r'^matching_outcomes_total\{engine="dlib",outcome="passed"\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0
