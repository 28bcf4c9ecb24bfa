"""Re-encrypting stored phone numbers under a new data key: batched, idempotent, all-or-nothing on bad keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from services.gateway.privacy import FieldCipher
from services.gateway.rekey import RotationRefused, rotate_phones
from tests.integration.test_retention import cli_env, run_privacy_cli
from tests.unit.test_privacy_keys import legacy_token

OLD = bytes(range(32))
NEW = bytes(range(100, 132))
OTHER = bytes(range(50, 82))
OLD_B64, NEW_B64, OTHER_B64 = (base64.b64encode(k).decode() for k in (OLD, NEW, OTHER))


def phone(n: int) -> str:
    return f"138{n:08d}"


async def seed_users(database: Any, count: int) -> dict[str, str]:
    """`count` users with a phone: a third in the pre-key-id format, the rest tagged k0; one without a phone."""
    old = FieldCipher.from_config(data_key=OLD_B64)
    tokens: dict[str, str] = {}
    for n in range(count):
        openid = f"o-{n:04d}"
        token = (
            legacy_token(OLD, phone(n), f"phone:{openid}")
            if n % 3 == 0
            else old.encrypt(phone(n), context=f"phone:{openid}")
        )
        await database.db["users"].insert_one(
            {"_id": openid, "phone_encrypted": token, "phone_masked": "138****"}
        )
        tokens[openid] = token
    await database.db["users"].insert_one({"_id": "o-nophone", "student_id": "10487:1"})
    return tokens


async def stored(database: Any) -> dict[str, str]:
    return {
        d["_id"]: d["phone_encrypted"]
        async for d in database.db["users"].find({"phone_encrypted": {"$exists": True}})
    }


async def test_rotation_moves_every_phone_to_the_new_key_in_batches_and_is_idempotent(database: Any) -> None:
    await seed_users(database, 25)
    ring = FieldCipher.from_config(f"k1:{NEW_B64},k0:{OLD_B64}")
    dry = await rotate_phones(database, ring, batch_size=4, dry_run=True)
    assert dry.as_dict()["by_key"] == {"k0": 25} and dry.rotated == 0 and dry.unreadable == 0
    report = await rotate_phones(database, ring, batch_size=4)
    assert (report.scanned, report.rotated, report.already_current, report.unreadable) == (25, 25, 0, 0)
    after = await stored(database)
    new_only = FieldCipher.from_config(f"k1:{NEW_B64}")  # the old key can now leave the ring
    for openid, token in after.items():
        assert token.startswith("v1:k1:")
        assert new_only.decrypt(token, context=f"phone:{openid}") == phone(int(openid[2:]))
    again = await rotate_phones(database, ring, batch_size=7)
    assert (again.rotated, again.already_current) == (0, 25)
    assert await stored(database) == after  # nothing rewritten


async def test_rotation_with_a_wrong_or_missing_key_changes_nothing(database: Any) -> None:
    tokens = await seed_users(database, 6)
    # k0 is configured with the wrong material, or not at all: no token may be rewritten.
    for ring in (
        FieldCipher.from_config(f"k1:{NEW_B64},k0:{OTHER_B64}"),
        FieldCipher.from_config(f"k1:{NEW_B64}"),
    ):
        with pytest.raises(RotationRefused) as info:
            await rotate_phones(database, ring, batch_size=2)
        assert info.value.report.unreadable == 6 and info.value.report.rotated == 0
        assert await stored(database) == tokens
    # One damaged token among good ones: still all or nothing.
    await database.db["users"].update_one({"_id": "o-0001"}, {"$set": {"phone_encrypted": "v1:k0:AAAA"}})
    with pytest.raises(RotationRefused) as info:
        await rotate_phones(database, FieldCipher.from_config(f"k1:{NEW_B64},k0:{OLD_B64}"))
    assert info.value.report.unreadable == 1
    assert (await stored(database))["o-0002"] == tokens["o-0002"]


async def test_rotation_cli_reports_counts_without_personal_data(
    database: Any, mongo_url: str, mongo_db: str
) -> None:
    tokens = await seed_users(database, 5)
    wrong = cli_env(mongo_url, mongo_db, GATEWAY_DATA_KEYS=f"k1:{NEW_B64},k0:{OTHER_B64}")
    code, out, err = run_privacy_cli(wrong, "rotate")
    assert code == 2 and out[0]["error"] == "unreadable_tokens" and out[0]["unreadable"] == 5
    assert await stored(database) == tokens
    bad_config = cli_env(mongo_url, mongo_db, GATEWAY_DATA_KEYS="k1:not-base64")
    code, out, err = run_privacy_cli(bad_config, "rotate")
    assert code == 2 and out[0]["error"] == "key_config" and "not-base64" not in json.dumps(out)

    good = cli_env(mongo_url, mongo_db, GATEWAY_DATA_KEYS=f"k1:{NEW_B64}", GATEWAY_DATA_KEY=OLD_B64)
    code, out, err = run_privacy_cli(good, "rotate", "--dry-run")
    assert code == 0 and out[0]["dry_run"] is True and out[0]["by_key"] == {"k0": 5}
    assert await stored(database) == tokens
    code, out, err = run_privacy_cli(good, "rotate", "--batch", "2")
    assert code == 0 and out[0]["rotated"] == 5 and out[0]["current_key"] == "k1", err
    text = json.dumps(out) + err
    assert all(phone(n) not in text for n in range(5)) and "o-0001" not in text
    code, out, _ = run_privacy_cli(good, "rotate")
    assert code == 0 and out[0]["rotated"] == 0 and out[0]["already_current"] == 5
