"""The review outbox: a bounded queue on disk that carries review items from the request path to
the control plane, and the background sender that drains it.

Why it exists: the inference request must never wait on the network or fail because the control
plane is down. A request appends its items to a local SQLite file (WAL, one short transaction, no
fsync on commit) and answers; a sender thread POSTs each item to the review API, deletes it once
accepted, and backs off (exponentially, with jitter) while the control plane is unreachable or
overloaded. Items survive a restart of the process because the file is reopened.

Each serving process (each uvicorn worker) owns one file, `outbox-<slot>.sqlite3`, in a shared
directory: it takes the first slot whose lock file it can `flock`. The lock dies with the
process, so a restarted process takes a free slot and also adopts the items of any slot that no
living process holds (a worker count that went down leaves no item behind). Submissions are
idempotent on the item's ref, so an item sent twice (sent, then the process died before deleting
it) is harmless.

It never logs an item's body: bodies carry input summaries. Only refs, status codes, field names
and the control plane's reasons for fields that cannot quote a summary value appear in logs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

# How many processes may share one outbox directory (each takes a slot).
SLOT_LIMIT = 64
FILE_PREFIX = "outbox-"
DB_SUFFIX = ".sqlite3"
LOCK_SUFFIX = ".lock"
# Fields of a rejection whose reason text is safe to log: none of them can quote the input
# summary or the prediction.
_LOGGABLE_FIELDS = frozenset(
    {"", "ref", "deployment", "model", "version", "track", "request_id", "mode", "reason", "body"}
)
_MAX_LOGGED_ERRORS = 5
_CHECKPOINT_EVERY_SECONDS = 1.0
_IDLE_POLL_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
)
"""

DropReason = Literal["full", "error"]


class OutboxObserver(Protocol):
    """What the outbox reports (serving.metrics.ReviewMetrics implements it)."""

    def queued(self, count: int) -> None: ...

    def sent(self) -> None: ...

    def retried(self) -> None: ...

    def dropped(self, reason: str, count: int = 1) -> None: ...

    def depth(self, value: int) -> None: ...


class NullObserver:
    """Counts nothing: for tooling and tests that do not need metrics."""

    def queued(self, count: int) -> None:
        pass

    def sent(self) -> None:
        pass

    def retried(self) -> None:
        pass

    def dropped(self, reason: str, count: int = 1) -> None:
        pass

    def depth(self, value: int) -> None:
        pass


class OutboxUnavailable(Exception):
    """The outbox directory or file cannot be opened (permissions, every slot taken, corrupt)."""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    ref: str
    body: bytes
    attempts: int


class Outbox:
    """A bounded FIFO of (ref, JSON body) on disk. `append` is called on the request path and
    never blocks on anything but a few microseconds of SQLite work; the other methods are the
    sender thread's. Thread-safe: writes of both sides are serialised by one lock, so SQLite's
    own busy waiting (milliseconds) never happens on the request path."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_items: int,
        observer: OutboxObserver | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.directory = Path(directory)
        self.max_items = max_items
        self._observer: OutboxObserver = observer or NullObserver()
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.slot, self._lock_fd = self._claim_slot()
        except OSError as exc:
            raise OutboxUnavailable(f"cannot use {self.directory}: {exc.strerror}") from exc
        self.path = self._db_path(self.slot)
        try:
            # The request side: never checkpoints (that would fsync on a request).
            self._writer = self._connect(autocheckpoint=0)
            self._writer.executescript(_SCHEMA)
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
            # The sender side: reads, deletes and checkpoints, all off the request path.
            self._reader = self._connect(autocheckpoint=1000)
            self.adopted = self._adopt_orphans()
            (depth,) = self._reader.execute("SELECT COUNT(*) FROM items").fetchone()
        except sqlite3.Error as exc:
            self._release_lock()
            raise OutboxUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._depth = int(depth)
        self._observer.depth(self._depth)

    # ---- files and slots

    def _db_path(self, slot: int) -> Path:
        return self.directory / f"{FILE_PREFIX}{slot}{DB_SUFFIX}"

    def _lock_path(self, slot: int) -> Path:
        return self.directory / f"{FILE_PREFIX}{slot}{LOCK_SUFFIX}"

    def _try_lock(self, slot: int) -> int | None:
        fd = os.open(self._lock_path(slot), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _claim_slot(self) -> tuple[int, int]:
        for slot in range(SLOT_LIMIT):
            fd = self._try_lock(slot)
            if fd is not None:
                return slot, fd
        raise OutboxUnavailable(f"all {SLOT_LIMIT} outbox slots in {self.directory} are in use")

    def _release_lock(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def _connect(self, *, autocheckpoint: int) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash of the process (not of the machine) without
        # an fsync per commit, which keeps the request path in microseconds.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        return conn

    def _adopt_orphans(self) -> int:
        """Move the items of slots no living process holds into this slot; returns how many."""
        adopted = 0
        for path in sorted(self.directory.glob(f"{FILE_PREFIX}*{DB_SUFFIX}")):
            suffix = path.name[len(FILE_PREFIX) : -len(DB_SUFFIX)]
            if not suffix.isdigit() or int(suffix) == self.slot:
                continue
            fd = self._try_lock(int(suffix))
            if fd is None:
                continue  # a living process owns it
            try:
                adopted += self._adopt(path)
            except sqlite3.Error:
                # A damaged orphan must not stop this process from serving; it stays on disk.
                with contextlib.suppress(sqlite3.Error):
                    self._reader.execute("DETACH DATABASE orphan")
            finally:
                os.close(fd)
        return adopted

    def _adopt(self, path: Path) -> int:
        conn = self._reader
        conn.execute("ATTACH DATABASE ? AS orphan", (str(path),))
        try:
            has_items = conn.execute(
                "SELECT 1 FROM orphan.sqlite_master WHERE type = 'table' AND name = 'items'"
            ).fetchone()
            if not has_items:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                # INSERT OR IGNORE: the copy is not atomic across two WAL files, so a crash
                # here can leave an item in both; the next adoption skips the duplicate ref.
                moved = conn.execute(
                    "INSERT OR IGNORE INTO main.items (ref, body, created_at, attempts, last_error)"
                    " SELECT ref, body, created_at, attempts, last_error FROM orphan.items"
                    " ORDER BY id"
                ).rowcount
                conn.execute("DELETE FROM orphan.items")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return max(int(moved), 0)
        finally:
            conn.execute("DETACH DATABASE orphan")

    # ---- the request side

    def append(self, items: Sequence[tuple[str, bytes]]) -> DropReason | None:
        """Queue `(ref, body)` pairs all together, or none of them: None when queued, else why
        they were dropped ("full": the bound would be passed; "error": the file failed). Never
        raises and never waits for the sender."""
        count = len(items)
        if not count:
            return None
        now = time.time()
        rows = [(ref, body, now) for ref, body in items]
        with self._lock:
            if self._closed:
                self._observer.dropped("error", count)
                return "error"
            if self._depth + count > self.max_items:
                self._observer.dropped("full", count)
                return "full"
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO items (ref, body, created_at) VALUES (?, ?, ?)", rows)
                conn.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                self._observer.dropped("error", count)
                return "error"
            self._depth += count
            self._observer.queued(count)
            self._observer.depth(self._depth)
        return None

    # ---- the sender side

    @property
    def depth(self) -> int:
        return self._depth

    def peek(self) -> OutboxItem | None:
        """The oldest item, or None when the outbox is empty."""
        row = self._reader.execute(
            "SELECT id, ref, body, attempts FROM items ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return OutboxItem(id=int(row[0]), ref=str(row[1]), body=bytes(row[2]), attempts=row[3])

    def remove(self, item: OutboxItem) -> None:
        """Forget an item (sent, or rejected for good)."""
        with self._lock:
            deleted = self._reader.execute("DELETE FROM items WHERE id = ?", (item.id,)).rowcount
            if deleted:
                self._depth -= deleted
                self._observer.depth(self._depth)

    def record_failure(self, item: OutboxItem, error: str) -> None:
        """Count a failed attempt on the item (kept for operators inspecting the file)."""
        with self._lock:
            self._reader.execute(
                "UPDATE items SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:200], item.id),
            )

    def checkpoint(self) -> None:
        """Move the WAL into the database file without blocking writers (sender thread only)."""
        self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Close the file and free the slot; items stay on disk for the next process."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in (self._reader, self._writer):
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._release_lock()


# ---------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: sent (2xx), rejected for good (4xx but 401/403/408/429), or to be
    retried (everything else, including connection errors and timeouts)."""

    outcome: Literal["sent", "rejected", "retry"]
    status: int | None
    error: str
    retry_after: float | None = None
    reasons: tuple[str, ...] = ()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def _rejection_reasons(response: httpx.Response) -> tuple[str, ...]:
    """`field: reason` from a problem document; the reason text only for fields that cannot
    quote the input summary or the prediction."""
    try:
        payload = response.json()
    except ValueError:
        return ()
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list):
        return ()
    reasons = []
    for error in errors[:_MAX_LOGGED_ERRORS]:
        if not isinstance(error, dict):
            continue
        field = str(error.get("field") or "")[:64]
        top = field.split(".", 1)[0].split("[", 1)[0]
        if top in _LOGGABLE_FIELDS:
            reasons.append(f"{field}: {str(error.get('reason') or '')[:200]}")
        else:
            reasons.append(f"{field}: (reason not logged)")
    return tuple(reasons)


def classify(response: httpx.Response) -> Attempt:
    """Sort a response into sent, rejected or retry.

    401 and 403 are retried, not dropped: they mean this process's token is missing, expired or
    lacks the write scope, which an operator fixes for every item at once; dropping would lose
    every held prediction until then. The bound of the outbox still caps what is kept."""
    status = response.status_code
    if 200 <= status < 300:
        return Attempt("sent", status, "")
    if status in (401, 403):
        return Attempt("retry", status, "unauthorized")
    if status in (408, 429):
        return Attempt("retry", status, f"http_{status}", retry_after=_retry_after(response))
    if 400 <= status < 500:
        return Attempt("rejected", status, f"http_{status}", reasons=_rejection_reasons(response))
    return Attempt("retry", status, f"http_{status}", retry_after=_retry_after(response))


class Sender:
    """The background thread that drains an outbox, oldest item first.

    One item at a time, so a control plane that is down costs one connection attempt per backoff
    interval, not one per item. A retryable failure backs off `backoff * 2**(n-1)` seconds (capped
    at `backoff_max`, at least a 429/503's Retry-After up to the cap), scaled by a random factor
    in [0.5, 1] so that the workers and replicas of a deployment do not retry in step."""

    def __init__(
        self,
        outbox: Outbox,
        url: str,
        *,
        token: str = "",
        timeout: float = 10.0,
        backoff: float = 0.5,
        backoff_max: float = 60.0,
        observer: OutboxObserver | None = None,
        log: Any = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.outbox = outbox
        self.url = url
        self._headers = {"Content-Type": "application/json", "User-Agent": "modelplane-serving"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.backoff = backoff
        self.backoff_max = max(backoff_max, backoff)
        self._observer: OutboxObserver = observer or NullObserver()
        self._log = log
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._pending_delay = 0.0
        self._random = random.Random()

    # ---- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="review-outbox-sender", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Wake the sender: new items were appended (cheap; called on the request path)."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the attempt in flight (bounded by the HTTP timeout); items stay queued."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 1.0 if timeout is None else timeout)
        if self._owns_client and (self._thread is None or not self._thread.is_alive()):
            self._client.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- the loop

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th consecutive failure."""
        base = min(self.backoff_max, self.backoff * (2 ** min(failures - 1, 32)))
        wait = base * self._random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        if self._log is not None:
            getattr(self._log, level)(event, **fields)

    def _run(self) -> None:
        last_checkpoint = 0.0
        while not self._stop.is_set():
            try:
                self._wake.clear()
                item = self.outbox.peek()
                if item is None:
                    if time.monotonic() - last_checkpoint >= _CHECKPOINT_EVERY_SECONDS:
                        self.outbox.checkpoint()
                        last_checkpoint = time.monotonic()
                    self._wake.wait(_IDLE_POLL_SECONDS)
                    continue
                self.send_one(item)
                if self._failures:
                    self.outbox.checkpoint()
                    last_checkpoint = time.monotonic()
                    self._stop.wait(self._pending_delay)
            except Exception as exc:
                # The thread must outlive any surprise (a damaged file, a library bug).
                self._failures += 1
                self._emit("error", "review_sender_error", error_type=type(exc).__name__)
                self._stop.wait(self.delay(self._failures))

    def send_one(self, item: OutboxItem) -> Attempt:
        """POST one item and act on the answer (remove, drop or schedule a retry)."""
        try:
            response = self._client.post(self.url, content=item.body, headers=self._headers)
        except httpx.TimeoutException:
            attempt = Attempt("retry", None, "timeout")
        except httpx.HTTPError as exc:
            attempt = Attempt("retry", None, type(exc).__name__)
        else:
            attempt = classify(response)
        if attempt.outcome == "sent":
            self.outbox.remove(item)
            self._observer.sent()
            self._failures = 0
            self._pending_delay = 0.0
        elif attempt.outcome == "rejected":
            self.outbox.remove(item)
            self._observer.dropped("rejected")
            self._failures = 0
            self._pending_delay = 0.0
            self._emit(
                "warning",
                "review_item_rejected",
                ref=item.ref,
                status=attempt.status,
                reasons=list(attempt.reasons),
            )
        else:
            self._failures += 1
            self.outbox.record_failure(item, attempt.error)
            self._observer.retried()
            self._pending_delay = self.delay(self._failures, attempt.retry_after)
            self._emit(
                "warning",
                "review_submit_retry",
                ref=item.ref,
                status=attempt.status,
                error=attempt.error,
                attempt=item.attempts + 1,
                retry_in_s=round(self._pending_delay, 3),
                depth=self.outbox.depth,
            )
        return attempt
