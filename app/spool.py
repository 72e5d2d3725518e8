"""A local, fsynced, append-only spool for updates that Redis could not take (docs/delivery.md §5).

A broker does not replay a postback (Kite: "fire and forget"), so when Redis is away the web keeps
each update in a file under instance/spool/ and still answers 202. A replayer thread feeds the
records back through the same dedup + XADD step once Redis answers, and deletes a file only after
Redis took every record in it. Replaying a record twice is harmless: the dedup key turns the second
copy into a no-op.

Layout: one file per writing process (`<host>-<pid>-<random>.spool`), created as `.new`, locked with
a POSIX record lock (owned by the process, not inherited by a fork) and only then renamed, so another
process's replayer can never claim a file that is still being written. A file whose lock can be
taken belongs to nobody (a dead process, or one this process closed) and may be replayed by anyone.
Each record is one line: `<crc32 hex> <json>`; a torn last line (a crash mid-write, never
acknowledged) fails its checksum and is skipped.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".spool"
TEMP_SUFFIX = ".new"
READ_CHUNK = 500


@dataclass(frozen=True)
class SpoolRecord:
    """One update exactly as the Lua step would have queued it."""

    dedup_key: str
    event_id: str
    payload: str
    body: bytes

    def encode(self) -> bytes:
        """One self-checking line."""
        data = json.dumps(
            {"k": self.dedup_key, "i": self.event_id, "e": self.payload, "b": base64.b64encode(self.body).decode()},
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode()
        return b"%08x %s\n" % (zlib.crc32(data), data)

    @classmethod
    def decode(cls, line: bytes) -> SpoolRecord | None:
        """The record of a line, or None when the line is torn or corrupt."""
        crc, sep, data = line.rstrip(b"\n").partition(b" ")
        try:
            if not sep or int(crc, 16) != zlib.crc32(data):
                return None
            fields = json.loads(data)
            return cls(fields["k"], fields["i"], fields["e"], base64.b64decode(fields["b"]))
        except (ValueError, KeyError, TypeError):
            return None


class SpoolWriter:
    """This process's active spool file: append + fdatasync per record (measured ~0.15 ms here)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.path: Path | None = None
        self._fd: int | None = None
        self.records = 0
        self._pid = os.getpid()

    def append(self, record: SpoolRecord) -> None:
        """Write and sync one record; OSError means it is not durable (the caller answers 503)."""
        data = record.encode()
        with self.lock:
            fd = self._open()
            try:
                _write_all(fd, data)
                os.fdatasync(fd)
            except OSError:
                # A partial line must never glue itself to the next record: abandon this file.
                self._close()
                raise
            self.records += 1

    def rotate(self) -> Path | None:
        """Close the active file (it becomes claimable by any replayer); returns its path if it held records."""
        with self.lock:
            path = self.path if self.records else None
            self._close()
            return path

    def own_path(self) -> Path | None:
        """The file this process is writing (a replayer in this process must not open it: closing any
        descriptor of a file drops the process's POSIX lock on it)."""
        return self.path if self._pid == os.getpid() else None

    def _open(self) -> int:
        """The active descriptor, creating a fresh locked file when there is none (or after a fork)."""
        if self._pid != os.getpid():
            self._fd, self.path, self.records, self._pid = None, None, 0, os.getpid()
        if self._fd is not None:
            return self._fd
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        temp = self.directory / (name + TEMP_SUFFIX)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            final = self.directory / (name + SUFFIX)
            os.rename(temp, final)
            _fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            raise
        self._fd, self.path, self.records = fd, final, 0
        return fd

    def _close(self) -> None:
        """Close (and so unlock) the active file."""
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd, self.path, self.records = None, None, 0


def spool_files(directory: Path) -> list[Path]:
    """Spool files present, oldest first."""
    try:
        entries = [p for p in directory.iterdir() if p.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot list the spool directory %s: %s", directory, exc)
        return []
    return sorted(entries, key=_mtime)


def claim_file(path: Path) -> int | None:
    """Open and lock a spool file nobody holds; the descriptor, or None when a live writer or another
    replayer has it (or it is already gone)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:
            raise FileNotFoundError(path)  # replayed and deleted by someone else while we opened it
    except OSError:
        os.close(fd)
        return None
    return fd


def is_unowned(path: Path) -> bool:
    """True when no live process holds the file (probe only; never call it on this process's own file)."""
    fd = claim_file(path)
    if fd is None:
        return False
    os.close(fd)
    return True


def replay_claimed(fd: int, path: Path, take: Callable[[list[SpoolRecord]], None]) -> int:
    """Feed a claimed file to `take` in chunks, then delete it; always closes `fd`.

    `take` raises (e.g. redis.RedisError) when Redis did not take a chunk: the file then stays, whole,
    for the next attempt (records already taken are deduplicated then).
    """
    try:
        taken = 0
        with os.fdopen(fd, "rb", closefd=False) as stream:  # a second descriptor would drop the lock
            for chunk in _chunks(_records(stream, path), READ_CHUNK):
                take(chunk)
                taken += len(chunk)
        os.unlink(path)
        _fsync_dir(path.parent)
        return taken
    finally:
        os.close(fd)


def _records(stream, path: Path) -> Iterator[SpoolRecord]:
    """Records of a spool file; corrupt lines (a torn tail) are skipped with a warning."""
    for number, line in enumerate(stream, 1):
        record = SpoolRecord.decode(line)
        if record is None:
            log.warning("spool %s line %d is torn or corrupt (a write that never completed); skipped", path, number)
            continue
        yield record


def _chunks(records: Iterator[SpoolRecord], size: int) -> Iterator[list[SpoolRecord]]:
    """Lists of up to `size` records."""
    chunk: list[SpoolRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a created, renamed or deleted directory entry durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(path: Path) -> float:
    """Modification time, or 0 for a file that just vanished."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
