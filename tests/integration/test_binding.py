"""Binding defects (issue 13.5), against the real gateway, broker and database.

The defect: unbinding while a scan was pending set the owner to null; the pending result then bound the
student to `None`; afterwards every account got `student_bound_elsewhere`, and the console's unbind could
not repair it. Now unbinding with a scan in flight is refused, a result for an application without an
owner is dropped with a log line, binding refuses a missing openid, and the console's unbind releases the
student's binding whatever it points to.
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from services.codec.verify import confirm_view
from services.gateway.console.operators import Role
from services.gateway.context import APPLICATIONS, SCHOOLS, USERS
from services.gateway.domain.errors import DomainError
from services.gateway.handlers import GatewayHandlers
from shared.events import CodeDecoded, make_event
from tests.support.codes import RECORD, code_text
from tests.support.console import operator
from tests.support.system import running_system

pytestmark = pytest.mark.slow
STUDENT_ID = f"{RECORD.school_code}:{RECORD.student_number}"


async def test_locked_out_after_unbinding_while_a_scan_is_pending(env):
    async with running_system(env, with_codec=False) as system:  # no codec: the scan stays pending
        app = system.gateway.app
        db = system.gateway.database.db
        student = await system.student("o-unbind-1")
        status, scan = await student.submit_text(code_text())
        assert status == 202 and scan["status"] == "pending"

        status, body = await student.request("DELETE", "/api/v1/me/binding")
        assert (status, body["code"]) == (409, "scan_in_flight")
        stored = await db["applications"].find_one({"_id": scan["application_id"]})
        assert stored["owner_openid"] == "o-unbind-1"  # nothing changed

        # The codec's result arrives: the student is bound to the account that scanned, and can go on.
        handlers = GatewayHandlers(system.gateway.database, app[APPLICATIONS], app[USERS], app[SCHOOLS])
        result = CodeDecoded(scan_id=scan["scan_id"], student=confirm_view(RECORD), stage="text")
        await handlers.on_code_result(result, make_event(result, application_id=scan["application_id"]))
        assert (await student.status())["state"] == "code_verified"
        assert (await db["bindings"].find_one({"_id": STUDENT_ID}))["openid"] == "o-unbind-1"
        status, _ = await student.request("DELETE", "/api/v1/me/binding")
        assert status == 200
        assert await db["bindings"].find_one({"_id": STUDENT_ID}) is None

        # Another account carries on with the student's application.
        other = await system.student("o-unbind-2")
        status, scan2 = await other.submit_text(code_text())
        result2 = CodeDecoded(scan_id=scan2["scan_id"], student=confirm_view(RECORD), stage="text")
        await handlers.on_code_result(result2, make_event(result2, application_id=scan2["application_id"]))
        assert (await other.status())["application_id"] == scan["application_id"]


async def test_a_result_for_an_application_without_an_owner_is_dropped(env):
    async with running_system(env, with_codec=False) as system:
        app = system.gateway.app
        db = system.gateway.database.db
        student = await system.student("o-ownerless")
        status, scan = await student.submit_text(code_text())
        # Left behind by the old defect: the owner cleared while the scan was pending.
        await db["applications"].update_one({"_id": scan["application_id"]}, {"$set": {"owner_openid": None}})
        handlers = GatewayHandlers(system.gateway.database, app[APPLICATIONS], app[USERS], app[SCHOOLS])
        result = CodeDecoded(scan_id=scan["scan_id"], student=confirm_view(RECORD), stage="text")
        with capture_logs() as logs:
            assert (
                await handlers.on_code_result(
                    result, make_event(result, application_id=scan["application_id"])
                )
                == []
            )
        assert any(line["event"] == "code result dropped: the application has no owner" for line in logs)
        assert await db["bindings"].count_documents({}) == 0  # nobody bound to None
        assert (await db["applications"].find_one({"_id": scan["application_id"]}))["code"][
            "status"
        ] == "pending"
        with pytest.raises(DomainError, match="no_owner"):
            await app[USERS].bind(None, STUDENT_ID)


async def test_the_console_repairs_a_binding_to_no_account(env):
    async with running_system(env) as system:
        db = system.gateway.database.db
        student = await system.verified_student("o-repair-1")
        application_id = (await student.status())["application_id"]
        # The old defect's leftover: the student bound to no account, the application without an owner.
        await db["bindings"].replace_one({"_id": STUDENT_ID}, {"_id": STUDENT_ID, "openid": None})
        await db["applications"].update_one({"_id": application_id}, {"$set": {"owner_openid": None}})
        await db["users"].update_one({"_id": "o-repair-1"}, {"$unset": {"student_id": ""}})
        other = await system.student("o-repair-2")
        status, scan = await other.submit_text(code_text())
        assert (await other.wait_for_scan(scan["scan_id"]))["reason"] == "student_bound_elsewhere"

        support = await operator(system, "support@example.com", Role.SUPPORT, ["10487"])
        status, body = await support.request("POST", f"/console/api/v1/applications/{application_id}/unbind")
        assert status == 200 and body == {"application_id": application_id, "had_binding": True}
        audit = await db["audit_log"].find_one({"action": "student.unbind"})
        assert audit is not None and audit["target"]["binding_released"] is True

        status, scan = await other.submit_text(code_text())
        assert (await other.wait_for_scan(scan["scan_id"]))["status"] == "decoded"
        assert (await db["bindings"].find_one({"_id": STUDENT_ID}))["openid"] == "o-repair-2"
