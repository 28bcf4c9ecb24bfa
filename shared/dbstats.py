"""Database commands counted per collection (reads and writes), for `make load` and /metrics.

Every process's `Database` client carries this listener (shared/db.py); the counts are the Prometheus
counter `db_commands_total{collection, op, command}` on the process's `/metrics`, which `make load`
reads at the start and the end of its steady phase to print reads and writes per journey per
collection (docs/load.md). A listener call is a dict lookup and an increment: no measurable cost.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from pymongo import monitoring

READS = frozenset({"find", "getMore", "aggregate", "count", "countDocuments", "distinct", "listIndexes"})
WRITES = frozenset({"insert", "update", "delete", "findAndModify", "createIndexes"})

COMMANDS = Counter(
    "db_commands_total",
    "Database commands this process sent, by collection and kind (read, write, other)",
    ["collection", "op", "command"],
)


def collection_of(command_name: str, command: Any) -> str:
    """The collection a command acts on ('' for server commands such as ping or hello)."""
    if command_name == "getMore":
        return str(command.get("collection", ""))
    target = command.get(command_name)
    return target if isinstance(target, str) else ""


class CommandCounter(monitoring.CommandListener):
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name in READS:
            op = "read"
        elif name in WRITES:
            op = "write"
        else:
            return  # hello, ping, endSessions...: the driver's own housekeeping
        COMMANDS.labels(collection_of(name, event.command), op, name).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


LISTENER = CommandCounter()


def parse_metrics(text: str) -> dict[str, dict[str, float]]:
    """`{collection: {"read": n, "write": n}}` from a /metrics page."""
    counts: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line.startswith("db_commands_total{"):
            continue
        labels, _, value = line[len("db_commands_total{") :].partition("} ")
        fields = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
        collection = fields.get("collection", "").strip('"')
        op = fields.get("op", "").strip('"')
        per = counts.setdefault(collection, {"read": 0.0, "write": 0.0})
        per[op] = per.get(op, 0.0) + float(value)
    return counts
