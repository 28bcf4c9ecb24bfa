"""Operator accounts: roles, the schools each operator may see, passwords hashed with scrypt."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from services.gateway.console.shortcache import ShortCache
from shared.db import Database, Document
from shared.events import new_id, utcnow

INDEXES = {
    "operators": [IndexModel([("email", 1)], unique=True)],
}

# scrypt at n=2^14, r=8, p=1 (16 MiB): OWASP's minimum for interactive logins, stdlib only.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MAXMEM = 64 * 1024 * 1024


class Role(StrEnum):
    ADMIN = "admin"  # everything, every school: accounts, dead letters, audit search
    REVIEWER = "reviewer"  # review and exception queues of their schools
    SUPPORT = "support"  # students of their schools: history, unbinding, refunds; rosters
    # School staff (the registrar office, 学籍部门): their students' progress, registrar cases, exports;
    # only the routes that name this role (auth.operator refuses it everywhere else), no payment data.
    SCHOOL = "school"


@dataclass(frozen=True)
class Operator:
    operator_id: str
    email: str
    role: Role
    schools: tuple[str, ...]

    @property
    def all_schools(self) -> bool:
        return self.role is Role.ADMIN

    def sees(self, school_code: str | None) -> bool:
        return self.all_schools or (school_code is not None and school_code in self.schools)

    def school_filter(self, field: str = "school_code") -> dict[str, Any]:
        """A MongoDB filter limiting a query to the operator's schools."""
        return {} if self.all_schools else {field: {"$in": list(self.schools)}}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=_MAXMEM, dklen=32, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(digest) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


# Verified against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


class OperatorExists(Exception):
    pass


class Operators:
    """`operators`; an active operator is kept `cache_s` in this process after a read (every console
    request asks for one). Changes go through `update`, which drops it here at once; another replica's
    change (or one made in the database) is seen within `cache_s`."""

    def __init__(self, database: Database, *, cache_s: float = 5.0) -> None:
        self.collection = database.db["operators"]
        self._cache: ShortCache[str, Operator] = ShortCache(cache_s)

    async def create(self, email: str, password: str, role: Role, schools: list[str]) -> Operator:
        if len(password) < 12:
            raise ValueError("the password must have at least 12 characters")
        doc = {
            "_id": new_id(),
            "email": email.strip().lower(),
            "password_hash": hash_password(password),
            "role": str(role),
            "schools": sorted(set(schools)),
            "active": True,
            "created_at": utcnow(),
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError as exc:
            raise OperatorExists(email) from exc
        return _operator(doc)

    async def emails(self, operator_ids: set[str]) -> dict[str, str]:
        """Operator id -> email, for showing who did something (deactivated accounts included)."""
        if not operator_ids:
            return {}
        cursor = self.collection.find({"_id": {"$in": sorted(operator_ids)}}, {"email": 1})
        return {str(doc["_id"]): str(doc["email"]) async for doc in cursor}

    async def get(self, operator_id: str) -> Operator | None:
        """The operator if active (a disabled or unknown one is read again every time)."""
        cached = self._cache.get(operator_id)
        if cached is not None:
            return cached
        epoch = self._cache.epoch
        doc = await self.collection.find_one({"_id": operator_id, "active": True})
        if doc is None:
            return None
        who = _operator(doc)
        self._cache.put(operator_id, who, epoch)
        return who

    async def update(self, operator_id: str, fields: dict[str, Any]) -> None:
        """`$set` fields of an operator (active, role, schools, password...): effective here at once."""
        await self.collection.update_one({"_id": operator_id}, {"$set": fields})
        self._cache.drop(operator_id)

    async def authenticate(self, email: str, password: str) -> Operator | None:
        doc = await self.collection.find_one({"email": email.strip().lower(), "active": True})
        if doc is None:
            verify_password(password, _DUMMY_HASH)
            return None
        return _operator(doc) if verify_password(password, str(doc["password_hash"])) else None


def _operator(doc: Document) -> Operator:
    return Operator(str(doc["_id"]), str(doc["email"]), Role(doc["role"]), tuple(doc.get("schools") or ()))
