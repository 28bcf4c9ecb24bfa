"""The school's rules as one value: the only place a school default lives.

Every number a decision or a student-facing count uses (the standardisation quota, the face comparison
pass mark, free resubmissions, fees, the options the confirm step offers) comes from one `SchoolRules`,
built from the school's configuration (`services/gateway/schools.py`, `SchoolConfig.rules()`); a school
that leaves a field out gets the default written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class Choice:
    """One option of the confirm step (学历/级/届, mailing method): a stable code and its label."""

    code: str
    label: str


@dataclass(frozen=True)
class SchoolRules:
    # Seed step 11: "每日限3次照片标准化，当日超过制作次数限制，冷静期为24小时" — at most
    # `standardisations_per_day` in any rolling `quota_window`; filling it closes the quota for `cooling_off`.
    standardisations_per_day: int = 3
    quota_window: timedelta = timedelta(hours=24)
    cooling_off: timedelta = timedelta(hours=24)
    # Seed step 14: the face comparison's pass mark (0-100).
    pass_mark: float = 80.0
    # Seed step 12: after 审核未通过 the student may resubmit this many times for free.
    free_resubmissions: int = 2
    # Seed step 3: on-site attendees may collect online only where the school allows, at an extra fee.
    allow_onsite_attendees: bool = False
    fee_fen: int = 0
    onsite_extra_fee_fen: int = 0
    # Seed step 5: the first option of each is preselected.
    graduation_years: tuple[Choice, ...] = field(default=())
    mailing_options: tuple[Choice, ...] = field(default=())
    # Field practice: many provinces require the live camera (no album); the school says which it accepts.
    capture_sources: tuple[str, ...] = ("camera", "album")

    def order_amount(self, onsite_attendee: bool) -> int:
        """What the student pays (seed step 3: on-site attendees pay the manual-review fee on top)."""
        return self.fee_fen + (self.onsite_extra_fee_fen if onsite_attendee else 0)


#: What applies where a school is not (yet) configured: the defaults above.
DEFAULT_RULES = SchoolRules()
