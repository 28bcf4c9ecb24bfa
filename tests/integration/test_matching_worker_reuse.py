"""The admission photo submitted again, through the real matching worker (real RabbitMQ, real nx-27017,
the dlib engine, photos standardised by imaging's real pipeline and stored with its eyes):

- the admission photo on the canvas is refused with `admission_photo_reused` and the student's reason,
  stored as a failed comparison (not a failed compliant photo, not the registrar's case), and the
  gateway's domain turns that event into a `match_failed` application showing the reason;
- the demo student photo (the same package frame, re-lit) is not refused: it passes and carries the
  `admission_photo_similar` flag to the reviewer, read from the admission descriptor stored encrypted;
- another person's photo carries no flag.

Named to sort after test_matching_worker.py, whose first test reads the process-wide outcome counter
(`matching_outcomes_total{outcome="passed"} 1.0`) that the comparisons here add to.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from deploy.local import faces as demo
from services.gateway.applications import State
from services.gateway.domain import submissions
from services.gateway.domain.application import Application
from services.matching.compare import FaceRules, read_photo
from services.matching.config import MatchingSettings
from services.matching.descriptors import DescriptorStore, cipher_from_settings
from services.matching.engines import engine_for
from services.matching.messages import REASON_MESSAGES
from shared.events import MatchScored
from tests.integration.test_matching_worker import ResultQueue, confirmed, matching_worker, put_photo
from tests.support import matching_faces as faces
from tests.support import reuse_sets
from tests.support.system import settings_from

pytestmark = pytest.mark.slow


async def test_the_admission_photo_again_is_refused_and_a_near_copy_is_flagged(env, amqp_url):
    admission_bytes = demo.admission_photo()
    placed = reuse_sets.standardised(admission_bytes)
    student = reuse_sets.standardised(demo.student_photo(0))
    other = reuse_sets.standardised(faces.jpeg(faces.people()["group2"]))
    assert placed is not None and student is not None and other is not None
    results = ResultQueue(amqp_url)
    async with matching_worker(env) as worker:
        admission = await put_photo(worker, admission_bytes, "admission.jpg")
        blobs = {}
        for name, (data, eyes) in {"again": placed, "demo": student, "other": other}.items():
            blobs[name] = await worker.blobs.put(
                data, filename=f"{name}.jpg", content_type="image/jpeg", eyes_px=[list(e) for e in eyes]
            )
        # One at a time: the first reads the admission photo and stores its descriptor; the next two
        # read it back (with the face print the reuse check needs).
        got = {}
        for name in ("again", "demo", "other"):
            await worker.bus.publish(confirmed(f"p-{name}", "student-9", blobs[name], admission))
            [event] = await results.take(1)
            got[name] = event

        again = got["again"].data
        assert again["reason"] == "admission_photo_reused" and again["passed"] is False
        assert again["score"] == 0.0 and again["needs_registrar"] is False and again["flags"] == []
        assert again["message"] == REASON_MESSAGES["admission_photo_reused"]
        assert again["failed_compliant_photos"] == 0

        matches = worker.database.db["matches"]
        doc = await matches.find_one({"_id": "p-again"})
        assert doc is not None and doc["status"] == "failed" and doc["score"] is None
        assert doc["reuse"]["verdict"] == "reused" and doc["reuse"]["score"] >= 93
        assert doc["reuse"]["hamming"] <= 10 and doc["located"]["photo"] == "carried"
        assert "phash" not in str(doc) and "thumb" not in str(doc)  # evidence only, no pixels

        near = got["demo"].data
        assert near["reason"] is None and near["passed"] is True
        assert near["flags"] == ["admission_photo_similar"]
        near_doc = await matches.find_one({"_id": "p-demo"})
        assert near_doc is not None and near_doc["located"]["admission_photo"] == "stored"
        assert near_doc["reuse"]["verdict"] == "similar"

        assert got["other"].data["flags"] == [] and got["other"].data["reason"] is None
        other_doc = await matches.find_one({"_id": "p-other"})
        assert other_doc is not None and other_doc["reuse"]["verdict"] is None

        # The same event again: the stored outcome, refused the same way (not compared twice).
        await worker.bus.publish(confirmed("p-again", "student-9", blobs["again"], admission))
        [repeat] = await results.take(1)
        assert repeat.data == again

    # What the gateway's domain makes of the real event: a failed match the student can act on.
    application = Application.from_doc(
        {
            "_id": "app-student-9",
            "version": 1,
            "state": str(State.SUBMITTED),
            "owner_openid": "o9",
            "student_id": "student-9",
            "submission": {"submission_id": "s9", "photo_id": "p-again"},
        }
    )
    change = submissions.apply_match(application, MatchScored.model_validate(again), datetime.now(UTC))
    assert change.set["state"] == "match_failed"
    assert change.set["last_failure"]["code"] == "admission_photo_reused"
    assert "录取照片相同" in change.set["last_failure"]["message"]


async def test_an_admission_descriptor_stored_before_the_check_is_read_again(env, amqp_url):
    admission_bytes = demo.admission_photo()
    placed = reuse_sets.standardised(admission_bytes)
    assert placed is not None
    results = ResultQueue(amqp_url)
    async with matching_worker(env) as worker:
        settings = settings_from(env, MatchingSettings, service_name="matching")
        engine = engine_for(settings)
        admission = await put_photo(worker, admission_bytes, "admission.jpg")
        with engine.lock:
            reading = read_photo(engine, admission_bytes, FaceRules.from_settings(settings))
        store = DescriptorStore(worker.database, cipher_from_settings(settings))
        # As a worker before 15.5 stored it: the descriptor without a face print.
        await store.put("student-8", admission, engine.model, replace(reading, face_print=None))
        old = await store.get("student-8", admission, engine.model)
        assert old is not None and old.embedding is not None and old.face_print is None

        blob = await worker.blobs.put(
            placed[0], filename="again.jpg", content_type="image/jpeg", eyes_px=[list(e) for e in placed[1]]
        )
        await worker.bus.publish(confirmed("p-old", "student-8", blob, admission))
        [event] = await results.take(1)
        assert event.data["reason"] == "admission_photo_reused"
        doc = await worker.database.db["matches"].find_one({"_id": "p-old"})
        assert doc is not None and doc["located"]["admission_photo"] == "detected"
        renewed = await store.get("student-8", admission, engine.model)
        assert renewed is not None and renewed.face_print is not None
