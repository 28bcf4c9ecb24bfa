"""Who acts for an application: the WeChat account bound to the student (seed step 2, 我的 → 解除绑定).

Unbinding while a scan is in flight is refused: the scan's result binds the student to the account that
owns the application when it arrives, and with no owner it would bind the student to nobody, locking
every account out (`student_bound_elsewhere`). A result for an application without an owner is dropped.
"""

from __future__ import annotations

from services.gateway.domain.application import Application
from services.gateway.domain.change import NO_CHANGE, Change
from services.gateway.domain.errors import DomainError

# One account, one application. `active_owner` is the owner of an application an account acts for (owned,
# not merged into another): a unique index over it (`store.INDEXES`, only where it is a string) refuses a
# second one, so two first scans at the same moment cannot open two applications for one account.
# `owner_openid` stays on a merged application (its scan result stays readable by the account).


def unbind(application: Application) -> Change:
    """The application stays the student's, with no account acting for it until one binds again."""
    if application.scan_in_flight:
        raise DomainError("scan_in_flight")
    if application.owner_openid is None:
        return NO_CHANGE
    return application.change(owner_openid=None, active_owner=None)


def take_over(application: Application, openid: str) -> Change:
    """The account the student bound on continues this application (they unbound and came back)."""
    if not openid:
        raise DomainError("no_owner")
    if application.owner_openid == openid:
        return NO_CHANGE
    return application.change(owner_openid=openid, active_owner=openid)


def can_bind(openid: str | None) -> str:
    """The account a scan result would bind the student to; refuses an application without an owner."""
    if not openid:
        raise DomainError("no_owner")
    return openid
