"""`python -m services.gateway.console.cli create-operator --email E --role admin [--schools 10487,...]`.

The password comes from CONSOLE_OPERATOR_PASSWORD or standard input, never from an argument (the
process list and shell history would keep it).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys

from services.gateway.console.operators import INDEXES, OperatorExists, Operators, Role
from shared.config import Settings
from shared.db import Database

PASSWORD_ENV = "CONSOLE_OPERATOR_PASSWORD"  # noqa: S105 (the name of the variable)


def read_password() -> str:
    if password := os.environ.get(PASSWORD_ENV):
        return password
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


async def _create(email: str, role: Role, schools: list[str], password: str) -> int:
    database = Database(Settings())
    try:
        await database.ensure_indexes(INDEXES)
        operator = await Operators(database).create(email, password, role, schools)
    except OperatorExists:
        print(json.dumps({"ok": False, "error": f"an operator with email {email} exists"}))
        return 1
    except ValueError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 2
    finally:
        await database.close()
    out = {
        "ok": True,
        "operator_id": operator.operator_id,
        "email": operator.email,
        "role": str(operator.role),
    }
    print(json.dumps(out | {"schools": list(operator.schools)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway.console.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser(
        "create-operator", help=f"create an operator; password from ${PASSWORD_ENV} or stdin"
    )
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=[str(r) for r in Role])
    create.add_argument("--schools", default="", help="comma-separated school codes (admins see all schools)")
    args = parser.parse_args(argv)
    schools = [s.strip() for s in args.schools.split(",") if s.strip()]
    if args.role != Role.ADMIN and not schools:
        parser.error("reviewers and support operators need --schools")
    return asyncio.run(_create(args.email, Role(args.role), schools, read_password()))


if __name__ == "__main__":
    sys.exit(main())
