"""CPU seconds of groups of processes, read from /proc (Linux), for "CPU per request" figures.

A group is a process and its descendants (the API server and its workers, the projector,
a benchmark's own process), the PostgreSQL server minus the backends of other databases
(other work on the same server is not ours), or Redis. ``Meter`` takes a reading when a
phase starts and one when it ends; a process that started meanwhile counts from zero.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# "postgres: 15/main: user database 127.0.0.1(5432) idle": a client backend and its database.
BACKEND = re.compile(r"^postgres: [^:]+: \S+ (\S+) (?:\S+\(\d+\)|\[local\])")


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    name: str
    command: str
    cpu_seconds: float  # user + system, this process's own threads


def processes() -> dict[int, Process]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        found[int(entry.name)] = Process(
            int(entry.name), int(fields[1]), name, command, ticks / CLOCK_TICKS
        )
    return found


def tree(root: int) -> Callable[[Process, dict[int, Process]], bool]:
    """The process ``root`` and all its descendants."""

    def belongs(process: Process, table: dict[int, Process]) -> bool:
        pid = process.pid
        while pid > 1:
            if pid == root:
                return True
            pid = table[pid].parent if pid in table else 0
        return False

    return belongs


def postgres(database: str) -> Callable[[Process, dict[int, Process]], bool]:
    """The PostgreSQL server's processes, without the backends of any other database."""

    def belongs(process: Process, table: dict[int, Process]) -> bool:
        if process.name != "postgres":
            return False
        backend = BACKEND.match(process.command)
        return backend is None or backend[1] == database

    return belongs


def named(name: str) -> Callable[[Process, dict[int, Process]], bool]:
    return lambda process, table: process.name == name


@dataclass
class Meter:
    """CPU seconds spent by each named group between ``start`` and ``stop``."""

    groups: dict[str, Callable[[Process, dict[int, Process]], bool]]
    started: dict[str, dict[int, float]] = field(default_factory=dict)

    def _read(self) -> dict[str, dict[int, float]]:
        table = processes()
        return {
            group: {p.pid: p.cpu_seconds for p in table.values() if belongs(p, table)}
            for group, belongs in self.groups.items()
        }

    def start(self) -> None:
        self.started = self._read()

    def stop(self) -> dict[str, float]:
        ended = self._read()
        return {
            group: sum(
                seconds - self.started.get(group, {}).get(pid, 0.0)
                for pid, seconds in ended[group].items()
            )
            for group in self.groups
        }
