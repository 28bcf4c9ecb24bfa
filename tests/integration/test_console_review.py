"""Console sign-in, CSRF, throttling and the review queue over HTTP, on the real broker and database."""

from __future__ import annotations

import asyncio
import json

import aio_pika

from services.gateway.console.operators import Role
from services.gateway.schools import demo_school
from tests.support.console import PASSWORD, OperatorClient, in_review_case, operator
from tests.support.system import running_system

OTHER_SCHOOL = "10001"


async def notify_events(env: dict[str, str], event_type: str, timeout: float = 10.0) -> list[dict]:
    """Envelopes of `event_type` waiting in the notify queue (the notify worker is not running here)."""
    connection = await aio_pika.connect(env["AMQP_URL"])
    found: list[dict] = []
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("notify", ensure=False)
        deadline = asyncio.get_running_loop().time() + timeout
        while not found and asyncio.get_running_loop().time() < deadline:
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                envelope = json.loads(message.body)
                if envelope["type"] == event_type:
                    found.append(envelope)
            if not found:
                await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return found


async def test_sign_in_cookies_csrf_and_throttling(env):
    async with running_system(env, with_codec=False) as system:
        admin = await operator(system, "admin@example.com", Role.ADMIN, [])
        cookie_headers = admin.cookies
        assert set(cookie_headers) == {"console_session", "console_csrf"}
        status, me = await admin.request("GET", "/console/api/v1/me")
        assert status == 200 and me["role"] == "admin" and me["all_schools"] is True

        # The session cookie is HttpOnly, Secure and SameSite=Strict, scoped to /console.
        async with admin.http.post(
            f"{system.base_url}/console/api/v1/login",
            json={"email": "admin@example.com", "password": PASSWORD},
        ) as resp:
            raw = next(
                h for h in resp.headers.getall("Set-Cookie") if h.startswith("console_session=")
            ).lower()
        assert "httponly" in raw and "secure" in raw and "samesite=strict" in raw and "path=/console" in raw

        # No cookie: 401; a state-changing request without or with a wrong CSRF token: 403, nothing done.
        anonymous = OperatorClient(system.base_url, admin.http)
        assert (await anonymous.request("GET", "/console/api/v1/me"))[0] == 401
        assert (await admin.request("POST", "/console/api/v1/logout", csrf=""))[0] == 403
        status, body = await admin.request("POST", "/console/api/v1/logout", csrf="forged")
        assert status == 403 and body["code"] == "csrf_failed"
        assert (await admin.request("GET", "/console/api/v1/me"))[0] == 200  # still signed in
        assert (await admin.request("POST", "/console/api/v1/logout"))[0] == 204
        assert (await admin.request("GET", "/console/api/v1/me"))[0] == 401

        # Five failed attempts for one account from one address, then even the right password is throttled
        # from there (only failures count: the sign-ins above cost nothing); every attempt is audited.
        guesser = OperatorClient(system.base_url, admin.http)
        for _ in range(5):
            status, body = await guesser.login("admin@example.com", "wrong password!")
            assert status == 401 and body["code"] == "invalid_credentials"
        status, body = await guesser.login("admin@example.com")
        assert status == 429 and body["code"] == "rate_limited" and body["details"]["retry_after_s"] > 0
        assert (await guesser.login("nobody@example.com", "x"))[0] == 401  # unknown email: same answer

        fresh = OperatorClient(system.base_url, admin.http)
        audit = system.gateway.database.db["audit_log"]
        outcomes = [d["outcome"] async for d in audit.find({"action": "login"})]
        assert outcomes.count("failed") == 6 and outcomes.count("throttled") == 1 and "ok" in outcomes
        assert fresh.cookies == {}


async def test_review_queue_leases_decisions_and_scoping(env):
    async with running_system(env, with_codec=False) as system:
        db = system.gateway.database.db
        await db["schools"].replace_one(
            {"_id": OTHER_SCHOOL},
            {"_id": OTHER_SCHOOL, **demo_school(OTHER_SCHOOL, "乙大学").model_dump()},
            upsert=True,
        )
        first = await in_review_case(system)
        second = await in_review_case(system, number="2110216053")
        elsewhere = await in_review_case(system, OTHER_SCHOOL, number="1")
        alice = await operator(system, "alice@example.com", Role.REVIEWER, ["10487"])
        bob = await operator(system, "bob@example.com", Role.REVIEWER, ["10487"])
        support = await operator(system, "sam@example.com", Role.SUPPORT, ["10487"])
        admin = await operator(system, "root@example.com", Role.ADMIN, [])

        # Two reviewers asking at once get different cases, oldest first; a third call finds none left.
        (sa, a), (sb, b) = await asyncio.gather(
            alice.request("POST", "/console/api/v1/reviews/next"),
            bob.request("POST", "/console/api/v1/reviews/next"),
        )
        assert sa == sb == 200
        assert {a["case"]["application_id"], b["case"]["application_id"]} == {first, second}
        assert a["case"]["lease_expires_at"] and a["case"]["match"]["score"] == 91.5
        assert (await alice.request("POST", "/console/api/v1/reviews/next"))[1]["case"]["application_id"] == (
            a["case"]["application_id"]
        )  # asking again returns the case I hold, not another
        carol = await operator(system, "carol@example.com", Role.REVIEWER, ["10487"])
        assert (await carol.request("POST", "/console/api/v1/reviews/next"))[1] == {"case": None}

        # The photo and admission photo views are served and audited.
        photo_url = a["case"]["submitted_photo"]["image_url"]
        status, image = await alice.request("GET", photo_url)
        assert status == 200 and image[:3] == b"\xff\xd8\xff"
        status, _ = await alice.request("GET", a["case"]["admission_photo_url"])
        assert status == 200
        views = [
            d async for d in db["audit_log"].find({"action": "photo.view", "operator_id": alice.operator_id})
        ]
        assert {v["target"]["kind"] for v in views} == {"photo", "admission_photo"}

        # Another school's case does not exist for them: 404, for viewing and for deciding.
        assert (await alice.request("GET", f"/console/api/v1/applications/{elsewhere}/admission-photo"))[
            0
        ] == 404
        status, body = await alice.request(
            "POST", f"/console/api/v1/reviews/{elsewhere}/decision", json={"decision": "approved"}
        )
        assert status == 404 and body["code"] == "not_found"
        assert (await db["applications"].find_one({"_id": elsewhere}))["state"] == "in_review"
        # Support does not review; nobody decides a case another reviewer holds; CSRF is checked first.
        assert (await support.request("POST", "/console/api/v1/reviews/next"))[0] == 403
        bob_case = b["case"]["application_id"]
        status, body = await alice.request(
            "POST", f"/console/api/v1/reviews/{bob_case}/decision", json={"decision": "approved"}
        )
        assert status == 409 and body["code"] == "review_lease_held"
        status, _ = await bob.request(
            "POST", f"/console/api/v1/reviews/{bob_case}/decision", json={"decision": "approved"}, csrf="bad"
        )
        assert (
            status == 403 and (await db["applications"].find_one({"_id": bob_case}))["state"] == "in_review"
        )

        # Approve one, reject the other with a reason and a script in the note (kept as inert text).
        status, approved = await bob.request(
            "POST", f"/console/api/v1/reviews/{bob_case}/decision", json={"decision": "approved"}
        )
        assert status == 200 and approved["state"] == "approved"
        alice_case = a["case"]["application_id"]
        status, body = await alice.request(
            "POST", f"/console/api/v1/reviews/{alice_case}/decision", json={"decision": "rejected"}
        )
        assert status == 400 and body["code"] == "reason_required"
        script = "<script>alert('x')</script>"
        status, rejected = await alice.request(
            "POST",
            f"/console/api/v1/reviews/{alice_case}/decision",
            json={"decision": "rejected", "reason_code": "background", "note": script},
        )
        assert status == 200 and rejected["state"] == "rejected"
        assert rejected["review"]["note"] == script and rejected["review"]["reason_code"] == "background"
        async with bob.http.get(
            f"{system.base_url}/console/api/v1/audit",
            headers={"Cookie": f"console_session={admin.cookies['console_session']}"},
        ) as resp:  # every console answer: JSON, not sniffable as HTML, not cached, not framed
            assert resp.content_type == "application/json"
            assert (
                resp.headers["X-Content-Type-Options"] == "nosniff"
                and resp.headers["Cache-Control"] == "no-store"
            )
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        stored = await db["applications"].find_one({"_id": alice_case})
        assert stored["resubmissions_left"] == 2 and stored["last_failure"]["code"] == "review_rejected"
        assert "背景" in stored["last_failure"]["message"]
        # Deciding twice is refused by the state machine.
        status, body = await alice.request(
            "POST", f"/console/api/v1/reviews/{alice_case}/decision", json={"decision": "approved"}
        )
        assert status == 409 and body["code"] == "illegal_transition"

        decided = {e["application_id"]: e["data"] for e in await notify_events(env, "review.decided.v1")}
        while len(decided) < 2:
            decided.update(
                {e["application_id"]: e["data"] for e in await notify_events(env, "review.decided.v1")}
            )
        assert (
            decided[bob_case]["decision"] == "approved"
            and decided[bob_case]["operator_id"] == bob.operator_id
        )
        assert decided[alice_case]["decision"] == "rejected" and script in decided[alice_case]["reason"]

        # Only admins search the audit log.
        assert (await alice.request("GET", "/console/api/v1/audit"))[0] == 403
        status, page = await admin.request("GET", f"/console/api/v1/audit?application_id={alice_case}")
        assert status == 200
        actions = [e["action"] for e in page["entries"]]
        assert "review.decided" in actions and "review.claim" in actions and "photo.view" in actions
        # And the admin sees every school's queue.
        status, body = await admin.request("POST", "/console/api/v1/reviews/next")
        assert body["case"]["application_id"] == elsewhere


def test_bootstrap_cli_reads_the_password_from_the_environment_never_an_argument(env, monkeypatch, capsys):
    from pymongo import MongoClient

    from services.gateway.console import cli

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(cli.PASSWORD_ENV, PASSWORD)
    assert (
        cli.main(["create-operator", "--email", "Boss@Example.com", "--role", "admin", "--schools", "10487"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["email"] == "boss@example.com"
    assert cli.main(["create-operator", "--email", "boss@example.com", "--role", "admin"]) == 1  # exists
    with MongoClient(env["MONGO_URL"]) as client:
        stored = client[env["MONGO_DB"]]["operators"].find_one({"email": "boss@example.com"})
    assert stored["password_hash"].startswith("scrypt$") and PASSWORD not in str(stored)


async def test_a_rejection_reaches_the_student_who_resubmits_free(env):
    import aiohttp

    from tests.support.photos import photo_jpeg, score, standardise

    async def ready_photo(student, application_id: str) -> str:
        form = aiohttp.FormData()
        form.add_field("source", "camera")
        form.add_field("image", photo_jpeg(), filename="photo.jpg", content_type="image/jpeg")
        status, photo = await student.request("POST", "/api/v1/photos", data=form)
        assert status == 202, photo
        await standardise(env, system, application_id, photo["photo_id"])
        for _ in range(200):
            photos = {p["photo_id"]: p for p in (await student.status())["photos"]}
            if photos[photo["photo_id"]]["status"] == "standardized":
                return str(photo["photo_id"])
            await asyncio.sleep(0.05)
        raise AssertionError("never standardised")

    async with running_system(env) as system:
        student = await system.paid_student("o-reviewed")
        application_id = (await student.status())["application_id"]
        photo_id = await ready_photo(student, application_id)
        body = {"photo_id": photo_id, "admission_photo_confirmed": True}
        assert (await student.request("POST", "/api/v1/submissions", json=body))[0] == 202
        await score(env, application_id, photo_id, "10487:2110216052", 91.5)
        await student.wait_for_state("in_review")

        reviewer = await operator(system, "rita@example.com", Role.REVIEWER, ["10487"])
        status, claimed = await reviewer.request("POST", "/console/api/v1/reviews/next")
        assert claimed["case"]["application_id"] == application_id
        assert (
            claimed["case"]["student"]["name"] and claimed["case"]["submitted_photo"]["photo_id"] == photo_id
        )
        status, decided = await reviewer.request(
            "POST",
            f"/console/api/v1/reviews/{application_id}/decision",
            json={"decision": "rejected", "reason_code": "lighting", "note": "左脸有阴影"},
        )
        assert status == 200 and decided["state"] == "rejected"

        seen = await student.status()
        assert seen["state"] == "rejected" and seen["next"]["action"] == "take_photo"
        assert seen["last_failure"]["code"] == "review_rejected" and "光线" in seen["last_failure"]["message"]
        assert seen["resubmissions_left"] == 2
        [event] = await notify_events(env, "review.decided.v1")
        assert event["data"]["decision"] == "rejected" and event["data"]["photo_id"] == photo_id
        # The first free resubmission.
        again = await ready_photo(student, application_id)
        status, submitted = await student.request(
            "POST", "/api/v1/submissions", json={"photo_id": again, "admission_photo_confirmed": True}
        )
        assert status == 202 and submitted["resubmissions_left"] == 1
