"""Check a decrypted CHSI record against what the student typed and the school they collect for."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.codec.payload import ChsiRecord, id_last4, mismatched_fields
from shared.events import ChsiStudent, StudentClaim
from shared.logging import mask_name


@dataclass(frozen=True)
class Verdict:
    reason: str | None  # None: the code belongs to this student
    mismatched_fields: list[str] = field(default_factory=list)


def verify(record: ChsiRecord, claim: StudentClaim, expected_school_code: str | None) -> Verdict:
    # A student number that is empty or "0" on CHSI must be fixed at the registrar first (seed, step 5).
    if record.student_number.strip() in {"", "0"}:
        return Verdict("student_number_invalid")
    mismatched = mismatched_fields(
        record, name=claim.name, student_number=claim.student_number, id_last4=claim.id_last4
    )
    if mismatched:
        return Verdict("fields_mismatch", mismatched)
    if expected_school_code and record.school_code.strip() != expected_school_code.strip():
        return Verdict("school_mismatch")
    return Verdict(None)


def confirm_view(record: ChsiRecord) -> ChsiStudent:
    """What the confirm page shows: the name and ID masked as CHSI masks them."""
    return ChsiStudent(
        chsi_id=record.chsi_id,
        masked_name=mask_name(record.name),
        student_number=record.student_number,
        id_last4=id_last4(record.id_masked),
        school_code=record.school_code,
        school_name=record.school_name,
        education_category=record.education_category,
        level=record.level,
        department=record.department,
        class_name=record.class_name,
    )
