"""Seed step 5: the student confirms the decoded code with graduation year and mailing method."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.gateway.applications import Action, transition
from services.gateway.domain.application import Application
from services.gateway.domain.change import Change
from services.gateway.domain.errors import DomainError
from services.gateway.domain.rules import Choice, SchoolRules


def pick(options: tuple[Choice, ...], code: str | None) -> Choice:
    """The chosen option, the first (preselected) one when none was chosen."""
    if not options:
        raise DomainError("illegal_transition", reason="school_not_configured")
    if code is None:
        return options[0]
    for option in options:
        if option.code == code:
            return option
    raise DomainError("invalid_option", allowed=[o.code for o in options])


def confirmation_of(
    rules: SchoolRules, graduation_year: str | None, mailing_method: str | None, now: datetime
) -> dict[str, Any]:
    year, mailing = pick(rules.graduation_years, graduation_year), pick(rules.mailing_options, mailing_method)
    return {
        "graduation_year": {"code": year.code, "label": year.label},
        "mailing_method": {"code": mailing.code, "label": mailing.label},
        "confirmed_at": now,
    }


def confirm(
    application: Application,
    rules: SchoolRules,
    now: datetime,
    *,
    graduation_year: str | None = None,
    mailing_method: str | None = None,
) -> Change:
    """Confirm (or change year and mailing before paying)."""
    confirmation = confirmation_of(rules, graduation_year, mailing_method, now)
    state = transition(application.state, Action.CONFIRM)
    return application.change(state=state, confirmation=confirmation)
