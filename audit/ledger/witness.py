"""Witnesses: places outside the database that keep a copy of every signed checkpoint.

A checkpoint row in the database can be deleted together with the events it covers by anyone who can
write to the database. So every checkpoint is first handed to each witness, and only then is its row
committed: every checkpoint in the database is also in every witness, and verification compares the
ledger with the newest checkpoint a witness holds as well as with the database's.

A witness keeps notes in increasing tree size. ``append`` refuses (returns False) a note whose tree
size is not above the newest one it already holds: another process signed a newer head first, and the
caller drops its own checkpoint instead of committing one the witness does not have.

The file witness (``AUDIT_WITNESS_FILE``) is the first; a remote log or an auditor's mailbox can be
added later behind the same interface. File format: the signed notes exactly as signed, separated by
one blank line, oldest first (``iter_notes`` in :mod:`audit.ledger.checkpoint` reads it). Appends
hold an exclusive ``flock`` on the file and are fsync'd before ``append`` returns.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from audit.ledger.checkpoint import NoteEntry, iter_notes

TAIL_BYTES = 64 * 1024
MISSING = (
    "is missing while the database holds checkpoints: restore it, or start a new one over the "
    "database's checkpoints with `audit witness init`"
)


class WitnessError(RuntimeError):
    """A witness that cannot take or give checkpoints (missing, unwritable, unreadable)."""


class Witness(Protocol):
    name: str

    def exists(self) -> bool:
        """Whether the witness has been set up (False on a new install)."""
        ...

    def append(self, note: str, tree_size: int, *, create: bool) -> bool:
        """Durably record ``note`` (a signed checkpoint of ``tree_size``); False when the witness
        already holds one at least as large. ``create``: a missing witness may be set up now (only
        while the database holds no checkpoint); otherwise a missing witness raises WitnessError."""
        ...

    def entries(self) -> Iterator[NoteEntry]:
        """Every note held, oldest first, including entries that are not notes (reported)."""
        ...

    def newest(self) -> str | None:
        """The newest note held (None when there is none or the witness is missing)."""
        ...

    def check_ready(self, *, must_exist: bool) -> None:
        """Raise WitnessError when appends would fail (the start-up check)."""
        ...

    def start(self, notes: Iterable[str]) -> int:
        """Set up a witness that does not exist yet, holding ``notes`` (oldest first); returns how many.
        Used once, to adopt the checkpoints of a database that predates its witness."""
        ...


class FileWitness:
    """Signed notes appended to a local file, under an exclusive lock, fsync'd."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"witness file {self.path}"

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, note: str, tree_size: int, *, create: bool) -> bool:
        if not note.endswith("\n") or note.endswith("\n\n"):
            raise WitnessError("a witnessed note must end with exactly one newline")
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            raise WitnessError(f"{self.name} {MISSING}") from None
        except OSError as exc:
            raise WitnessError(f"cannot open {self.name}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            newest = _newest_note(fd, size)
            if newest is not None and (size_of(newest) or 0) >= tree_size:
                return False
            data = (b"\n" if size else b"") + note.encode()
            if os.write(fd, data) != len(data):
                raise WitnessError(f"short write to {self.name}")
            os.fsync(fd)
            if size == 0:
                _fsync_dir(self.path.parent)
            return True
        except OSError as exc:
            raise WitnessError(f"cannot append to {self.name}: {exc.strerror}") from exc
        finally:
            os.close(fd)  # releases the lock

    def entries(self) -> Iterator[NoteEntry]:
        try:
            with self.path.open("rb") as fh:
                # Appends are whole and under the lock: the size seen under it ends on a note
                # boundary, and the bytes before it never change, so the rest is read unlocked.
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
                size = os.fstat(fh.fileno()).st_size
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                yield from iter_notes(_lines(fh, size))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise WitnessError(f"cannot read {self.name}: {exc.strerror}") from exc

    def newest(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WitnessError(f"cannot read {self.name}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return _newest_note(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def check_ready(self, *, must_exist: bool) -> None:
        if self.path.exists():
            if not self.path.is_file():
                raise WitnessError(f"{self.name} is not a regular file")
            if not os.access(self.path, os.R_OK | os.W_OK):
                raise WitnessError(f"{self.name} is not readable and writable by this process")
            return
        if must_exist:
            raise WitnessError(f"{self.name} {MISSING}")
        parent = self.path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise WitnessError(f"cannot create {self.name}: {parent} is not a writable folder")

    def start(self, notes: Iterable[str]) -> int:
        if self.path.exists():
            raise WitnessError(f"{self.name} already exists")
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        count = 0
        try:
            with temp.open("xb") as out:
                for note in notes:
                    out.write((b"\n" if count else b"") + note.encode())
                    count += 1
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o644)
            os.link(temp, self.path)  # atomic, and never replaces a witness created meanwhile
        except FileExistsError:
            raise WitnessError(f"{self.name} already exists") from None
        except OSError as exc:
            raise WitnessError(f"cannot create {self.name}: {exc.strerror}") from exc
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        return count


def _newest_note(fd: int, size: int) -> str | None:
    """The last well-formed checkpoint note in the file (None for an empty file): read from the tail,
    widening the window until a whole note is in it."""
    window = TAIL_BYTES
    while size:
        start = max(0, size - window)
        chunk = os.pread(fd, size - start, start).decode("utf-8", errors="replace")
        lines = chunk.splitlines(keepends=True)
        if start:
            lines = lines[1:]  # the first line may be cut by the window
        found = None
        for entry in iter_notes(lines):
            if entry.note is not None and size_of(entry.note) is not None:
                found = entry.note
        if found is not None or start == 0:
            return found
        window *= 4
    return None


def size_of(note: str) -> int | None:
    """The tree size line of a checkpoint note (None if the second line is not a decimal number)."""
    lines = note.split("\n", 2)
    return int(lines[1]) if len(lines) > 2 and lines[1].isascii() and lines[1].isdigit() else None


def _lines(fh: BinaryIO, size: int) -> Iterator[str]:
    """The text lines in the first ``size`` bytes, each with its newline (the last may lack one)."""
    rest = b""
    left = size
    while left > 0:
        block = fh.read(min(left, 1 << 20))
        if not block:
            break
        left -= len(block)
        *whole, rest = (rest + block).split(b"\n")
        for line in whole:
            yield line.decode("utf-8", errors="replace") + "\n"
    if rest:
        yield rest.decode("utf-8", errors="replace")


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable too."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class WitnessAudit:
    """What a witness holds compared with the database's checkpoints.

    ``newest`` is its last well-formed note (the one the ledger is then checked against);
    ``problems`` name every way the witness and the database disagree, first found first.
    """

    name: str
    newest: str | None = None
    newest_size: int | None = None
    notes: int = 0
    torn_tail: str | None = None  # the last entry is not a note (a deleted or cut last line)
    problems: list[str] = field(default_factory=list)


def audit_witness(witness: Witness, db_notes: Iterable[tuple[int, str]]) -> WitnessAudit:
    """Walk the witness and the database's notes (both in increasing tree size) side by side.

    Reported: entries that are not notes (a torn or deleted line), notes out of order, a last entry
    that is not a note, and every database checkpoint the witness does not hold byte for byte (the
    witness lost entries, or the database holds a checkpoint that was never witnessed). Signatures are
    not checked here: the caller verifies the newest note, and the others must equal database notes.
    """
    result = WitnessAudit(witness.name)
    pending = iter(db_notes)
    want = next(pending, None)
    missing: list[int] = []
    last_bad: str | None = None
    previous = -1
    for entry in witness.entries():
        size = size_of(entry.note) if entry.note is not None else None
        if entry.note is None or size is None:
            last_bad = entry.problem or f"line {entry.line}: not a checkpoint note"
            result.problems.append(f"{witness.name}: {last_bad}")
            continue
        last_bad = None
        if size <= previous:
            result.problems.append(
                f"{witness.name}: line {entry.line}: tree size {size} is not above the previous {previous}"
            )
        previous = max(previous, size)
        while want is not None and want[0] < size:
            missing.append(want[0])
            want = next(pending, None)
        if want is not None and want[0] == size:
            if want[1] != entry.note:
                result.problems.append(
                    f"{witness.name}: line {entry.line}: its checkpoint at tree size {size} differs "
                    "from the database's"
                )
            want = next(pending, None)
        result.notes += 1
        result.newest, result.newest_size = entry.note, size
    while want is not None:
        missing.append(want[0])
        want = next(pending, None)
    if last_bad is not None:
        result.problems.pop()
        result.torn_tail = f"{witness.name}: its last entry is not a signed note ({last_bad})"
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        result.problems.append(
            f"{witness.name}: the database's checkpoint at tree size {missing[0]}{more} is not in it "
            "(entries lost, or a checkpoint that was never witnessed)"
        )
    return result
