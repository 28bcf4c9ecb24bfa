"""Matching without repeated work (issue 16.1), through the real broker and database.

- The admission photo is read once per student: its descriptor is stored encrypted in
  `admission_descriptors` and reused (the blob is not read again), recomputed when the photo or the
  model changes or the stored reading cannot be trusted.
- The standardised photo's face is found from the eyes imaging stored with the blob (no whole-photo
  detection); hostile or wrong eyes fall back to detection with the same score.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from deploy.local.faces import admission_photo, student_photo
from services.matching.descriptors import COLLECTION
from shared.events import MatchScored
from tests.integration.test_matching_worker import ResultQueue, confirmed, matching_worker, put_photo
from tests.support import matching_faces as faces

pytestmark = pytest.mark.slow


@functools.cache
def standardised() -> tuple[bytes, list[list[float]]]:
    """A load-test student photo through the real imaging check: the JPEG and the eyes imaging found."""
    from services.imaging.config import PhotoStandard
    from services.imaging.pipeline import check_photo
    from services.imaging.preprocess import default_pool

    with default_pool().borrow() as models:
        report = check_photo(student_photo(5), models, standard=PhotoStandard(), source="camera")
    assert report.ok and report.jpeg is not None and report.geometry is not None
    return report.jpeg, report.geometry["eyes_px"]


# The photos below are the admission photo re-encoded or re-lit, which the reuse check refuses or flags
# (tests/integration/test_matching_worker_reuse.py): off here, where the stored descriptor is the subject.


async def test_the_admission_descriptor_is_stored_encrypted_once_and_reused(env, amqp_url):
    people = faces.people()
    results = ResultQueue(amqp_url)
    async with matching_worker(env, matching_reuse_check=False) as worker:
        admission = await put_photo(worker, faces.jpeg(people["group2"]), "admission.jpg")
        first_photo = await put_photo(worker, faces.variants(people["group2"])["resized to 70 %"], "p1.jpg")
        await worker.bus.publish(confirmed("photo-1", "student-1", first_photo, admission))
        [first] = await results.take(1)
        store = worker.database.db[COLLECTION]
        doc = await store.find_one({"_id": "student-1"})
        assert doc is not None
        assert doc["admission_photo_blob_id"] == admission and doc["model"] == first.data["model"]
        token = doc["reading"]
        assert token.startswith(f"v1:{doc['key_id']}:") and "embedding" not in token and "[" not in token
        one = await worker.database.db["matches"].find_one({"_id": "photo-1"})
        assert one is not None and one["located"]["admission_photo"] == "detected"

        # The admission blob is gone: the second comparison can only have used the stored descriptor.
        await worker.blobs.delete(admission)
        second_photo = await put_photo(worker, faces.variants(people["group2"])["brightened 35 %"], "p2.jpg")
        await worker.bus.publish(confirmed("photo-2", "student-1", second_photo, admission))
        [second] = await results.take(1)
        assert second.data["passed"] is True and second.data["reason"] is None
        two = await worker.database.db["matches"].find_one({"_id": "photo-2"})
        assert two is not None and two["located"]["admission_photo"] == "stored"
        assert (await store.find_one({"_id": "student-1"}))["reading"] == token  # not rewritten


async def test_a_new_admission_photo_a_new_model_or_a_damaged_record_is_read_again(env, amqp_url):
    people = faces.people()
    results = ResultQueue(amqp_url)
    async with matching_worker(env, matching_reuse_check=False) as worker:
        store = worker.database.db[COLLECTION]
        old = await put_photo(worker, faces.jpeg(people["astronaut"]), "old.jpg")
        photo = await put_photo(worker, faces.variants(people["group0"])["brightened 35 %"], "p.jpg")
        await worker.bus.publish(confirmed("photo-a", "student-2", photo, old))
        [before] = await results.take(1)
        assert before.data["passed"] is False  # the wrong admission photo was imported first

        # Re-imported (a new blob): the stored reading no longer applies.
        new = await put_photo(worker, faces.jpeg(people["group0"]), "new.jpg")
        await worker.bus.publish(confirmed("photo-b", "student-2", photo, new))
        [after] = await results.take(1)
        assert after.data["passed"] is True
        doc = await store.find_one({"_id": "student-2"})
        assert doc is not None and doc["admission_photo_blob_id"] == new

        # Another model's reading (the weights changed) is not used, and is replaced.
        await store.update_one(
            {"_id": "student-2"}, {"$set": {"model": "dlib_face_recognition_resnet_model_v1@0"}}
        )
        await worker.bus.publish(confirmed("photo-c", "student-2", photo, new))
        [again] = await results.take(1)
        assert again.data["score"] == after.data["score"]
        doc = await store.find_one({"_id": "student-2"})
        assert doc is not None and doc["model"] == after.data["model"]
        located = await worker.database.db["matches"].find_one({"_id": "photo-c"})
        assert located is not None and located["located"]["admission_photo"] == "detected"

        # Damaged, or moved onto another student's record: it does not decrypt; read again, same score.
        for n, damage in enumerate(
            [doc["reading"][:-6] + "AAAAAA", "v1:gone:AAAA", "not a token", 12, None], start=1
        ):
            await store.update_one({"_id": "student-2"}, {"$set": {"reading": damage}})
            await worker.bus.publish(confirmed(f"photo-d{n}", "student-2", photo, new))
            [redone] = await results.take(1)
            assert redone.data["score"] == after.data["score"], damage
        other = await store.find_one({"_id": "student-2"})
        assert other is not None
        await store.insert_one({**other, "_id": "student-3"})  # bound to student-2: useless for student-3
        await worker.bus.publish(confirmed("photo-e", "student-3", photo, new))
        [moved] = await results.take(1)
        assert moved.data["score"] == after.data["score"]
        found = await worker.database.db["matches"].find_one({"_id": "photo-e"})
        assert found is not None and found["located"]["admission_photo"] == "detected"


async def test_a_bad_admission_photo_is_remembered_as_such(env, amqp_url):
    results = ResultQueue(amqp_url)
    async with matching_worker(env, matching_reuse_check=False) as worker:
        admission = await put_photo(worker, faces.jpeg(faces.no_face()), "admission.jpg")
        photo = await put_photo(worker, faces.jpeg(faces.people()["group1"]), "p.jpg")
        for n in (1, 2):
            await worker.bus.publish(confirmed(f"photo-{n}", "student-4", photo, admission))
            [result] = await results.take(1)
            assert result.data["reason"] == "admission_photo_no_face" and result.data["needs_registrar"]
        second = await worker.database.db["matches"].find_one({"_id": "photo-2"})
        assert second is not None and second["located"]["admission_photo"] == "stored"


async def _carried(worker: Any, eyes: Any, name: str) -> str:
    jpeg, _ = standardised()
    return await worker.blobs.put(
        jpeg, filename=name, content_type="image/jpeg", kind="standardized_photo", eyes_px=eyes
    )


async def test_the_standardised_photo_is_aligned_from_the_eyes_imaging_stored(env, amqp_url):
    _, eyes = standardised()
    results = ResultQueue(amqp_url)
    async with matching_worker(env, matching_reuse_check=False) as worker:
        admission = await put_photo(worker, admission_photo(), "admission.jpg")
        carried = await _carried(worker, eyes, "carried.jpg")
        await worker.bus.publish(confirmed("photo-eyes", "student-5", carried, admission))
        [result] = await results.take(1)
        doc = await worker.database.db["matches"].find_one({"_id": "photo-eyes"})
        assert doc is not None and doc["located"]["photo"] == "carried"
        assert result.data["passed"] is True and "locate" in doc["timings_ms"]

        # Eyes that are wrong (elsewhere, swapped, far apart), malformed or hostile: the face is detected
        # on the whole photo instead, and the score is the same within a point.
        (lx, ly), (rx, ry) = eyes
        hostile: list[Any] = [
            [[lx + 120, ly + 200], [rx + 120, ry + 200]],
            [[lx, ly + 150], [rx, ry + 150]],
            [[rx, ry], [lx, ly]],
            [[0, 0], [470, 630]],
            [[lx, ly]],
            [[lx, ly], [rx, ry], [1, 1]],
            [["a", "b"], ["c", "d"]],
            [["nan", ly], [rx, ry]],
            [[-1e308, ly], [1e308, ry]],
            "eyes",
            {"x": [1, 2]},
            None,
        ]
        for n, bad in enumerate(hostile):
            blob = await _carried(worker, bad, f"bad{n}.jpg")
            await worker.bus.publish(confirmed(f"photo-bad{n}", "student-5", blob, admission))
            [fallback] = await results.take(1)
            stored = await worker.database.db["matches"].find_one({"_id": f"photo-bad{n}"})
            assert stored is not None and stored["located"]["photo"] == "detected", bad
            assert fallback.data["passed"] is True, bad
            assert abs(fallback.data["score"] - result.data["score"]) <= 1.0, bad
            MatchScored.model_validate(fallback.data)
