"""What a decision returns: the top-level fields of the application to set (and unset), and the events
the change causes (written with it, in the same document: `shared/outbox.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.events import Envelope


@dataclass
class Change:
    set: dict[str, Any] = field(default_factory=dict)
    unset: Sequence[str] = ()
    events: Sequence[Envelope] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.unset or self.events)


#: A decision that changes nothing (a repeat, or a result for something superseded).
NO_CHANGE = Change()
