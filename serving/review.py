"""Human review in the serving process: apply the deployment's review policy to every predicted
row, queue the selected rows for the control plane, and shape the "pending review" answer.

Why here and not in the control plane: a held prediction must be withheld in the very response
that would have carried it, and the control plane is not on the request path. The policy arrives
as MODELPLANE_REVIEW_POLICY (parsed by serving.config); items go through the on-disk outbox
(serving.outbox), so the request never waits on the network and a control plane that is down
loses nothing.

Per row, the first matching reason wins: `all` -> high_risk; confidence (the highest class
probability) below `confidence_below` -> low_confidence; output class in `classes` ->
class_listed; the random `sample_percent` -> sampled. Held rows answer HTTP 202 with their values
null and a reference each; audited rows answer normally and are submitted too.

Privacy: an item carries only the features the package declares in `review_summary` (and the
package's explanation of those); nothing here logs an item, a summary or a prediction.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from serving.config import ReviewPolicy, ReviewSettings
from serving.outbox import Outbox, OutboxObserver, Sender

if TYPE_CHECKING:
    import numpy as np

    from serving.packaging import LoadedModel, Prediction

HIGH_RISK = "high_risk"
LOW_CONFIDENCE = "low_confidence"
CLASS_LISTED = "class_listed"
SAMPLED = "sampled"
PENDING_REVIEW = "pending_review"
# Limits of the submission API (the control plane refuses more).
MAX_REQUEST_ID = 128
MAX_TRACK = 20
MAX_SUMMARY_STRING = 1000
# A prediction with many classes carries only its most probable ones.
MAX_ITEM_CLASSES = 50
# At most one "outbox full" warning per interval: a full outbox would otherwise log per request.
_DROP_LOG_INTERVAL_SECONDS = 10.0
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class ReviewUnavailable(Exception):
    """Held rows could not be queued (the outbox is full or its file failed). The request must
    not release those predictions unreviewed, nor hand out references that will never exist, so
    it answers 503 and the caller retries later."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"review outbox {reason}")
        self.reason = reason


def new_ref() -> str:
    """A fresh item reference. Generated here, before the first POST, so that every retry of the
    submission carries the same ref and the control plane can answer it idempotently."""
    return "rv_" + secrets.token_urlsafe(16)


def row_request_id(request_id: str, row: int, batch: int) -> str:
    """The request id of one row: the request's own for a single row, `<id>/<row>` in a batch.
    An id too long for the suffix is replaced by a digest of itself (stable, so retried
    requests still map to the same ids)."""
    if batch == 1:
        return request_id[:MAX_REQUEST_ID]
    suffix = f"/{row}"
    if len(request_id) + len(suffix) > MAX_REQUEST_ID:
        request_id = hashlib.sha256(request_id.encode()).hexdigest()[:64]
    return request_id + suffix


def default_outbox_dir(*, deployment: int, model: str, version: int, track: str) -> Path:
    """Where a serving process keeps its outbox when MODELPLANE_REVIEW_OUTBOX_DIR is unset: a
    folder under the temp dir named after what it serves, so a restarted process finds it."""
    name = _UNSAFE_PATH_CHARS.sub("_", f"d{deployment}-{model}-v{version}-{track}")[:120]
    return Path(tempfile.gettempdir()) / "modelplane-review-outbox" / name


class PolicySelector:
    """Which rows of a predicted batch the policy selects, and why (first match wins)."""

    def __init__(self, policy: ReviewPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._threshold = policy.confidence_below
        self._classes = policy.classes
        self._sample = policy.sample_percent
        self._random = (rng or random.Random()).random

    def select(
        self, labels: Sequence[Any], probabilities: np.ndarray | None
    ) -> list[tuple[int, str]]:
        """`(row, reason)` for every selected row, in row order."""
        rows = len(labels)
        if self.policy.all:
            return [(row, HIGH_RISK) for row in range(rows)]
        confidences = None
        if self._threshold is not None and probabilities is not None:
            confidences = probabilities.max(axis=1).tolist()
        selected: list[tuple[int, str]] = []
        for row in range(rows):
            if confidences is not None and confidences[row] < self._threshold:
                selected.append((row, LOW_CONFIDENCE))
            elif self._classes and str(labels[row]) in self._classes:
                selected.append((row, CLASS_LISTED))
            elif self._sample and self._random() * 100.0 < self._sample:
                selected.append((row, SAMPLED))
        return selected


@dataclass
class PendingReview:
    """What one request selected: the outbox rows `(ref, body)` and the matching `reviews`
    entries of the pending-review answer."""

    request_id: str
    items: list[tuple[str, bytes]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)


class ReviewObserver(OutboxObserver, Protocol):
    """The metrics a reviewer reports to (serving.metrics.ReviewMetrics)."""

    def selected(self, mode: str, reason: str, count: int = 1) -> None: ...


def _summary_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_SUMMARY_STRING:
        return value[:MAX_SUMMARY_STRING]
    return value


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


class Reviewer:
    """Applies one policy for one served model version and queues what it selects."""

    def __init__(
        self,
        *,
        settings: ReviewSettings,
        model: LoadedModel,
        name: str,
        track: str,
        outbox: Outbox,
        sender: Sender,
        metrics: ReviewObserver,
        log: Any,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.policy = settings.policy
        self.outbox = outbox
        self.sender = sender
        self._selector = PolicySelector(settings.policy, rng)
        self._model = model
        self._classes = [str(c) for c in model.classes]
        self._summary = model.review_summary
        self._explains = bool(model.manifest.get("review_explanation"))
        self._metrics = metrics
        self._log = log
        self._review_url = settings.review_url
        self._base = {
            "deployment": settings.deployment,
            "model": name,
            "version": settings.version,
            "track": track[:MAX_TRACK],
            "mode": settings.policy.mode,
        }
        self._last_drop_log = 0.0

    def review(
        self, columns: Mapping[str, Sequence[Any]], prediction: Prediction, request_id: str
    ) -> list[dict[str, Any]] | None:
        """Select and queue in one call (tools and tests; the app splits the two so the disk
        write runs off the event loop). Returns the held rows' `reviews`, or None."""
        pending = self.select(columns, prediction, request_id)
        return None if pending is None else self.queue(pending)

    def select(
        self, columns: Mapping[str, Sequence[Any]], prediction: Prediction, request_id: str
    ) -> PendingReview | None:
        """The items of the rows the policy selects, ready to queue; None when it selects none
        (the common case: a few microseconds, no I/O)."""
        selected = self._selector.select(prediction.labels, prediction.probabilities)
        if not selected:
            return None
        mode = self.policy.mode
        batch = len(prediction.labels)
        pending = PendingReview(request_id=request_id)
        for row, reason in selected:
            ref = new_ref()
            body = self.item(ref, row, reason, columns, prediction, batch, request_id)
            pending.items.append((ref, _dumps(body)))
            pending.reviews.append(
                {"row": row, "ref": ref, "reason": reason, "url": f"{self._review_url}{ref}/"}
            )
            self._metrics.selected(mode, reason)
        return pending

    def queue(self, pending: PendingReview) -> list[dict[str, Any]] | None:
        """Append the items to the outbox (a short SQLite write: call it off the event loop, so a
        slow disk never stalls requests that are not held). Returns the `reviews` of the
        pending-review answer when rows are held, None when audited. Raises ReviewUnavailable
        when held rows could not be queued."""
        dropped = self.outbox.append(pending.items)
        if dropped is None:
            self.sender.notify()
        else:
            self._log_drop(dropped, len(pending.items), pending.request_id)
        if not self.policy.held:
            return None
        if dropped is not None:
            raise ReviewUnavailable(dropped)
        return pending.reviews

    def item(
        self,
        ref: str,
        row: int,
        reason: str,
        columns: Mapping[str, Sequence[Any]],
        prediction: Prediction,
        batch: int,
        request_id: str,
    ) -> dict[str, Any]:
        """The submission body of one row (the review API's contract)."""
        label = prediction.labels[row]
        output: dict[str, Any] = {"label": label}
        confidence = None
        if prediction.probabilities is not None:
            probabilities = prediction.probabilities[row].tolist()
            pairs = list(zip(self._classes, probabilities, strict=True))
            if len(probabilities) > MAX_ITEM_CLASSES:
                # The API caps a prediction at 16 KiB: keep the most probable classes.
                pairs = sorted(pairs, key=lambda pair: pair[1], reverse=True)[:MAX_ITEM_CLASSES]
            output["probabilities"] = dict(pairs)
            confidence = max(probabilities)
        item: dict[str, Any] = {
            "ref": ref,
            **self._base,
            "request_id": row_request_id(request_id, row, batch),
            "reason": reason,
            "prediction": output,
            "confidence": confidence,
            "input_summary": {name: _summary_value(columns[name][row]) for name in self._summary},
        }
        if self._explains:
            explanation = self._model.explain(prediction, row)
            if explanation is not None:
                item["explanation"] = explanation
        return item

    def _log_drop(self, reason: str, count: int, request_id: str) -> None:
        now = time.monotonic()
        if now - self._last_drop_log < _DROP_LOG_INTERVAL_SECONDS:
            return
        self._last_drop_log = now
        self._log.warning(
            "review_outbox_full" if reason == "full" else "review_outbox_error",
            request_id=request_id,
            dropped=count,
            mode=self.policy.mode,
            depth=self.outbox.depth,
            max_items=self.outbox.max_items,
        )

    def close(self) -> None:
        """Stop the sender and close the outbox; queued items stay on disk for the next start."""
        self.sender.stop()
        self.outbox.close()


def build_reviewer(
    settings: ReviewSettings,
    *,
    model: LoadedModel,
    name: str,
    track: str,
    metrics: ReviewObserver,
    log: Any,
) -> Reviewer:
    """Open (or reopen) this process's outbox, start its sender, and return the reviewer.
    Raises serving.outbox.OutboxUnavailable when the outbox cannot be opened: the service must
    then not become ready, since held predictions would have nowhere to go."""
    directory = settings.outbox_dir or default_outbox_dir(
        deployment=settings.deployment, model=name, version=settings.version, track=track
    )
    outbox = Outbox(directory, max_items=settings.outbox_max, observer=metrics)
    sender = Sender(
        outbox,
        settings.review_url,
        token=settings.token,
        timeout=settings.timeout_seconds,
        backoff=settings.backoff_seconds,
        backoff_max=settings.backoff_max_seconds,
        observer=metrics,
        log=log,
    )
    sender.start()
    log.info(
        "review_ready",
        mode=settings.policy.mode,
        deployment=settings.deployment,
        outbox=str(outbox.path),
        outbox_depth=outbox.depth,
        outbox_adopted=outbox.adopted,
        outbox_max=outbox.max_items,
        summary_fields=len(model.review_summary),
    )
    if not settings.token:
        log.warning(
            "review_token_missing",
            detail="MODELPLANE_REVIEW_TOKEN is unset: submissions will be refused and kept",
        )
    return Reviewer(
        settings=settings,
        model=model,
        name=name,
        track=track,
        outbox=outbox,
        sender=sender,
        metrics=metrics,
        log=log,
    )


# ---------------------------------------------------------------- the pending-review answer


def _held_rows(reviews: Sequence[Mapping[str, Any]]) -> frozenset[int]:
    return frozenset(int(r["row"]) for r in reviews)


def hold_infer_payload(payload: dict[str, Any], reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """An OIP v2 infer body with each held row's values null in every output tensor (a row
    spans `shape[1]` values of a [batch, n] tensor), plus the status and the references."""
    held = _held_rows(reviews)
    for output in payload["outputs"]:
        shape = output["shape"]
        width = int(shape[1]) if len(shape) > 1 else 1
        output["data"] = [
            None if i // width in held else value for i, value in enumerate(output["data"])
        ]
    payload["status"] = PENDING_REVIEW
    payload["reviews"] = reviews
    return payload


def hold_predict_payload(payload: dict[str, Any], reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """A /predict body with each held row's prediction and probabilities null, plus the status
    and the references."""
    held = _held_rows(reviews)
    for key in ("predictions", "probabilities"):
        if key in payload:
            payload[key] = [None if i in held else v for i, v in enumerate(payload[key])]
    payload["status"] = PENDING_REVIEW
    payload["reviews"] = reviews
    return payload
