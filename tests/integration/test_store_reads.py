"""Each student action reads its application once (issue 16.2): the route's own read is handed to the
guarded write (`Applications.apply(..., current=)`), and a copy gone stale meanwhile costs a refused
write and one more read, never a lost update."""

from __future__ import annotations

import pytest

from services.gateway.context import APPLICATIONS
from services.gateway.domain.change import Change
from shared.dbstats import COMMANDS
from tests.integration.test_long_poll import QUIET
from tests.support.system import running_system

pytestmark = pytest.mark.slow


def count(collection: str, op: str, command: str) -> float:
    return COMMANDS.labels(collection, op, command)._value.get()  # type: ignore[attr-defined]


def reads() -> float:
    return count("applications", "read", "find")


def writes() -> float:
    return count("applications", "write", "update")


async def test_confirm_and_order_read_the_application_once_and_a_stale_copy_loses_nothing(env):
    async with running_system(env, **QUIET) as system:
        student = await system.verified_student("o-reads-once")

        before_reads, before_writes = reads(), writes()
        status, body = await student.request("POST", "/api/v1/application/confirm", json={})
        assert status == 200, body
        assert (reads() - before_reads, writes() - before_writes) == (1, 1)

        # Placing an order: the route's read, then the order written `creating` and WeChat's prepay id
        # written over it, each deciding on the document the previous step read or wrote.
        before_reads, before_writes = reads(), writes()
        status, order = await student.request("POST", "/api/v1/orders")
        assert status == 201, order
        assert (reads() - before_reads, writes() - before_writes) == (1, 2)
        stored = await system.gateway.database.db["applications"].find_one({"owner_openid": "o-reads-once"})
        assert stored is not None and stored["order"]["status"] == "pending"
        assert stored["order"]["prepay_id"]

        # A copy that went stale: another write landed after it was read. The guarded write is refused,
        # the document read again and the decision made on it: both changes are kept.
        applications = system.gateway.app[APPLICATIONS]
        stale = await applications.get(stored["_id"])
        assert stale is not None
        await applications.mutate(stored["_id"], lambda doc: Change(set={"note_a": "first"}))
        before_reads = reads()
        written = await applications.mutate(
            stored["_id"], lambda doc: Change(set={"note_b": f"after {doc.get('note_a')}"}), current=stale
        )
        assert written["note_b"] == "after first" and written["note_a"] == "first"
        assert written["version"] == stale["version"] + 2
        assert reads() - before_reads == 1
        again = await applications.get(stored["_id"])
        assert again is not None and (again["note_a"], again["note_b"]) == ("first", "after first")
        # A copy of another application is never used for this one.
        other = {**stale, "_id": "someone-else"}
        before_reads = reads()
        await applications.mutate(stored["_id"], lambda doc: Change(set={"note_c": "x"}), current=other)
        assert reads() - before_reads == 1
