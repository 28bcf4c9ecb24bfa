"""deploy/local/system-deps.sh: what a bare machine lacks, what it runs as root, what it prints otherwise.

Every probe of the script is pointed at a machine made up here: a PATH holding only the tools a case
has, a linker cache from a fake `ldconfig -p`, a root folder for the files it looks at, closed or
listening ports for RabbitMQ. As "root" it gets fake apt-get and rabbitmq commands that record their
arguments (and, for the broker, listen on the port), so nothing is installed on the real machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local" / "system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"
# The plain tools the script itself uses; everything it looks for is added per case.
BASE_TOOLS = ("grep", "seq", "sleep", "id", "cat")
EVERY_PACKAGE = [
    "libzbar0",
    "fonts-wqy-microhei",
    "make",
    "python3-venv",
    "nodejs",
    "npm",
    "chromium",
    "rabbitmq-server",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Machine:
    """A made-up machine: its PATH, its files, its linker cache, its RabbitMQ ports."""

    home: Path
    uid: int = 1000
    amqp_port: int = field(default_factory=free_port)
    mgmt_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bin = self.home / "bin"
        self.prefix = self.home / "root"
        self.log = self.home / "calls.log"
        self.bin.mkdir()
        self.prefix.mkdir()
        self.log.touch()
        for tool in BASE_TOOLS:
            real = shutil.which(tool)
            assert real is not None, tool
            (self.bin / tool).symlink_to(real)
        self.ldcache("libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6")

    def tool(self, name: str, body: str = "exit 0") -> None:
        """A command on PATH that records how it was called, then runs `body`."""
        path = self.bin / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{self.log}"\n{body}\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def real(self, name: str) -> None:
        real = shutil.which(name)
        assert real is not None, name
        (self.bin / name).symlink_to(real)

    def python(self) -> None:
        """The interpreter itself (not a wrapper such as pyenv's shim, which needs more on PATH)."""
        (self.bin / "python3").symlink_to(os.path.realpath(sys.executable))

    def file(self, path: str, executable: bool = False) -> None:
        target = self.prefix / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
        if executable:
            target.chmod(0o755)

    def ldcache(self, *lines: str) -> None:
        listing = self.home / "ldcache.txt"
        listing.write_text("\n".join(lines) + "\n")
        self.env["SYSTEM_DEPS_LDCONFIG"] = f"cat {listing}"

    def everything(self) -> None:
        """What a machine that ran the script as root has."""
        self.ldcache("libzbar.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libzbar.so.0")
        self.file("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
        self.file("/usr/bin/chromium", executable=True)
        self.file("/usr/sbin/rabbitmq-server", executable=True)
        self.tool("make")
        self.python()
        self.tool("node", "echo v20.20.2")
        self.tool("npm", "echo 10.8.2")

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": str(self.bin),
            "SYSTEM_DEPS_PREFIX": str(self.prefix),
            "SYSTEM_DEPS_UID": str(self.uid),
            "SYSTEM_DEPS_AMQP_PORT": str(self.amqp_port),
            "SYSTEM_DEPS_MGMT_PORT": str(self.mgmt_port),
            "SYSTEM_DEPS_WAIT_S": "20",
            **self.env,
        }
        return subprocess.run(
            [BASH, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    m = Machine(tmp_path)
    yield m
    # Listeners started by the fake broker commands (their pids are in the log).
    for line in m.calls():
        if line.startswith("listener "):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[1]), 15)


class Listening:
    """Ports that answer, as a running RabbitMQ with its management plugin does."""

    def __init__(self, *ports: int) -> None:
        self.sockets = []
        for port in ports:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
            self.sockets.append(s)

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def packages(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith("package ")]


def test_bare_machine_lacks_everything(machine: Machine) -> None:
    result = machine.run("test", "--check")
    assert result.returncode == 1
    assert packages(result) == EVERY_PACKAGE
    assert "start rabbitmq-server" in result.stdout
    assert "enable rabbitmq_management" in result.stdout


def test_run_needs_no_browser(machine: Machine) -> None:
    result = machine.run("run", "--check")
    assert result.returncode == 1
    assert packages(result) == [p for p in EVERY_PACKAGE if p != "chromium"]


def test_not_root_prints_the_exact_command_and_changes_nothing(machine: Machine) -> None:
    machine.tool("apt-get")
    result = machine.run("test")
    assert result.returncode == 1
    assert (
        "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y "
        + " ".join(EVERY_PACKAGE)
        in result.stdout.splitlines()
    )
    assert "  sudo rabbitmq-server -detached" in result.stdout.splitlines()
    assert "  sudo rabbitmq-plugins enable rabbitmq_management" in result.stdout.splitlines()
    assert f"sudo {SCRIPT} test" in result.stdout
    assert machine.calls() == []  # apt-get was never called


def test_everything_present_says_nothing(machine: Machine) -> None:
    machine.everything()
    broker = Listening(machine.amqp_port, machine.mgmt_port)
    try:
        check = machine.run("test", "--check")
        ensure = machine.run("test")
    finally:
        broker.close()
    assert (check.returncode, check.stdout) == (0, "")
    assert (ensure.returncode, ensure.stdout, ensure.stderr) == (0, "", "")
    assert [c for c in machine.calls() if not c.startswith(("node", "npm"))] == []


def test_each_missing_piece_is_found_on_its_own(machine: Machine) -> None:
    machine.everything()
    broker = Listening(machine.amqp_port, machine.mgmt_port)
    try:
        (machine.prefix / "usr/bin/chromium").chmod(0o644)  # there, but not a program
        assert packages(machine.run("test", "--check")) == ["chromium"]
        (machine.prefix / "usr/bin/chromium").chmod(0o755)
        machine.tool("node", "echo v16.20.2")  # older than the mini-program's tests accept
        assert packages(machine.run("test", "--check")) == ["nodejs"]
        (machine.bin / "npm").unlink()
        machine.tool("node", "echo v18.19.0")
        assert packages(machine.run("test", "--check")) == ["npm"]
        machine.tool("npm", "echo 10.8.2")
        machine.ldcache("libzbar.so.0d (libc6) => /elsewhere/libzbar.so.0d", "libfoo.so.1 => /x")
        assert packages(machine.run("run", "--check")) == ["libzbar0"]
        # Not in the linker cache (being rewritten by an apt-get elsewhere), but the library is there.
        machine.file("/usr/lib/x86_64-linux-gnu/libzbar.so.0")
        assert packages(machine.run("run", "--check")) == []
    finally:
        broker.close()


def test_broker_down_but_installed(machine: Machine) -> None:
    machine.everything()
    result = machine.run("run", "--check")
    assert packages(result) == []
    assert result.stdout.splitlines() == ["start rabbitmq-server", "enable rabbitmq_management"]


def test_a_broker_elsewhere_or_brought_by_the_caller_is_not_checked(machine: Machine) -> None:
    machine.everything()
    machine.env["AMQP_URL"] = "amqp://app:secret@rabbit.internal:5672/"
    assert machine.run("run", "--check").returncode == 0
    machine.env["AMQP_URL"] = "amqp://guest:guest@localhost:5672/"
    assert machine.run("run", "--check").returncode == 1
    machine.env["SYSTEM_DEPS_BROKER"] = "0"
    assert machine.run("run", "--check").returncode == 0


def test_as_root_on_debian_installs_starts_and_enables(machine: Machine) -> None:
    machine.uid = 0
    python = os.path.realpath(sys.executable)
    listen = (
        f"{python} -c 'import socket, sys, time; s = socket.socket(); "
        f's.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)\' {{port}} >/dev/null 2>&1 &\n'
        f'echo "listener $!" >> "{machine.log}"'
    )
    machine.tool("apt-get")
    machine.file("/usr/sbin/rabbitmq-server", executable=False)  # apt would put it there; ours is a fake
    (machine.prefix / "usr/sbin/rabbitmq-server").unlink()
    machine.tool("rabbitmq-server", listen.format(port=machine.amqp_port))
    machine.tool("rabbitmqctl")
    machine.tool("rabbitmq-plugins", listen.format(port=machine.mgmt_port))
    result = machine.run("test")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [c for c in machine.calls() if not c.startswith("listener ")]
    # rabbitmq-server is on PATH (as the fake), so it is not among the packages to install.
    assert calls[:2] == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends "
        "libzbar0 fonts-wqy-microhei make python3-venv nodejs npm chromium",
    ]
    assert calls[2:] == [
        "rabbitmq-server -detached",
        "rabbitmqctl -q status",
        "rabbitmq-plugins -q enable rabbitmq_management",
    ]
    assert "[deps] installing: libzbar0" in result.stdout


def test_root_without_apt_prints_the_command(machine: Machine) -> None:
    machine.uid = 0
    result = machine.run("run")
    assert result.returncode == 1
    assert (
        "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y libzbar0"
        in result.stdout
    )
    assert "no apt-get here" in result.stdout


def test_bad_arguments(machine: Machine) -> None:
    assert machine.run().returncode == 2
    assert machine.run("deploy").returncode == 2
    assert machine.run("test", "--install-everything").returncode == 2


def test_make_test_stops_before_collecting_on_a_bare_machine(machine: Machine) -> None:
    """`make test` runs the script first; on a machine that lacks a package it stops there."""
    make = shutil.which("make")
    assert make is not None
    machine.real("bash")
    env = {
        "PATH": str(machine.bin),
        "SYSTEM_DEPS_PREFIX": str(machine.prefix),
        "SYSTEM_DEPS_UID": "1000",
        "SYSTEM_DEPS_AMQP_PORT": str(machine.amqp_port),
        "SYSTEM_DEPS_MGMT_PORT": str(machine.mgmt_port),
        **machine.env,
    }
    result = subprocess.run(
        [make, "-C", str(ROOT), "test"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y" in result.stdout
    assert "pytest" not in result.stdout and "ruff" not in result.stdout and "mypy" not in result.stdout


def test_make_and_ci_run_call_the_script_first() -> None:
    make = shutil.which("make")
    assert make is not None
    for target, profile in (("test", "test"), ("run", "run"), ("pytest", "test")):
        dry = subprocess.run(
            [make, "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60, check=True
        ).stdout.splitlines()
        first = next(i for i, line in enumerate(dry) if "system-deps.sh" in line)
        assert dry[first].split()[-1] == profile
        later = [
            i for i, line in enumerate(dry) if "pytest" in line or "pip install" in line or "run.py" in line
        ]
        assert all(i > first for i in later), dry
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    deps = [i for i, line in enumerate(ci) if line.endswith("bash deploy/local/system-deps.sh test")]
    assert deps and max(deps) < ci.index("make test")


def test_images_needs_the_container_tools_only(machine: Machine) -> None:
    result = machine.run("images", "--check")
    assert result.returncode == 1
    assert packages(result) == ["buildah", "podman", "runc", "debootstrap"]
    for tool in ("buildah", "podman"):
        machine.tool(tool)
    machine.file("/usr/sbin/runc", executable=True)
    machine.file("/usr/sbin/debootstrap", executable=True)
    assert (machine.run("images", "--check").returncode, machine.run("images", "--check").stdout) == (0, "")
