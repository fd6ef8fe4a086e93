"""A small, faithful-where-it-matters Kubernetes API server for tests: a real HTTP server on
127.0.0.1 that the official client talks to. It stores Deployments (+ /status), Services,
autoscaling/v2 HPAs and Gateway API v1 HTTPRoutes, with resourceVersion preconditions, 409/404
Status objects, generation bumps on spec change, label selectors, merge-patch, schema
validation of every write (422 Invalid) and fault injection.

Test support only: it binds to loopback, holds everything in memory, and is not a cluster."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client as k8s

from tests.k8s.schemas import Invalid, validate_object


@dataclass(frozen=True)
class Kind:
    prefix: str  # "/apis/apps/v1" or "/api/v1"
    plural: str
    kind: str
    api_version: str
    group: str  # for Status details, "" for core


KINDS = [
    Kind("/apis/apps/v1", "deployments", "Deployment", "apps/v1", "apps"),
    Kind("/api/v1", "services", "Service", "v1", ""),
    Kind(
        "/apis/autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
        "autoscaling",
    ),
    Kind(
        "/apis/gateway.networking.k8s.io/v1",
        "httproutes",
        "HTTPRoute",
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io",
    ),
]
_PATH = re.compile(
    r"^(?P<prefix>/apis?/(?:[^/]+/)?v[0-9a-z]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?/?$"
)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    times: int
    status: int = 500
    delay: float = 0.0


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: Any = None


@dataclass
class _State:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    resource_version: int = 1000
    faults: list[Fault] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code: int, reason: str, message: str, details: dict[str, Any] | None = None):
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


_SELECTOR_TERM = re.compile(
    r"^\s*(?P<key>[^\s!=,()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_selector(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return terms


def label_selector_matcher(selector: str) -> Callable[[dict[str, str]], bool]:
    """Equality (=, ==, !=), set-based (in, notin) and existence (k, !k) terms, ANDed."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_selector(selector or ""):
        term = term.strip()
        if term.startswith("!"):
            key = term[1:].strip()
            checks.append(lambda labels, key=key: key not in labels)
            continue
        match = _SELECTOR_TERM.match(term)
        if not match:
            raise ValueError(f"unable to parse requirement: {term!r}")
        key = match.group("key")
        if match.group("op") in ("=", "=="):
            value = match.group("value")
            checks.append(lambda labels, key=key, value=value: labels.get(key) == value)
        elif match.group("op") == "!=":
            value = match.group("value")
            checks.append(lambda labels, key=key, value=value: labels.get(key) != value)
        elif match.group("setop"):
            values = {v.strip() for v in match.group("values").split(",") if v.strip()}
            if match.group("setop") == "in":
                checks.append(lambda labels, key=key, values=values: labels.get(key) in values)
            else:
                checks.append(lambda labels, key=key, values=values: labels.get(key) not in values)
        else:
            checks.append(lambda labels, key=key: key in labels)
    return lambda labels: all(check(labels) for check in checks)


class FakeApiServer:
    """Start with `start()`, point a client at `api_client()`, stop with `stop()`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Engine and end-to-end tests set this: Deployments become ready as soon as written.
        self.auto_ready = False
        # Play the Gateway's controller: a written HTTPRoute is Accepted at its generation.
        # Tests turn it off to hold a route change back from the data plane.
        self.gateway_controller = True

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeApiServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without TCP_NODELAY every keep-alive
            # response waits ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, body = fake._dispatch(
                    self.command, self.path, raw, self.headers.get("Content-Type", "")
                )
                payload = json.dumps(body).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away, as a real client would

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def api_client(self) -> k8s.ApiClient:
        configuration = k8s.Configuration(host=self.url)
        configuration.retries = False
        return k8s.ApiClient(configuration)

    # ------------------------------------------------------------------ test controls

    def fail_next(self, method: str, path_regex: str, status: int = 500, times: int = 1) -> None:
        with self._lock:
            self._state.faults.append(Fault(method.upper(), re.compile(path_regex), times, status))

    def delay_next(self, method: str, path_regex: str, seconds: float, times: int = 1) -> None:
        """Hold matching requests for `seconds` before handling them (a client timeout); the
        request is still applied afterwards, as on a slow real server."""
        with self._lock:
            self._state.faults.append(
                Fault(method.upper(), re.compile(path_regex), times, status=0, delay=seconds)
            )

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._state.log)

    @property
    def invalid_writes(self) -> list[Invalid]:
        with self._lock:
            return list(self._state.invalid)

    def clear_log(self) -> None:
        with self._lock:
            self._state.log.clear()

    def get(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._state.objects.get((plural, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def all(self, plural: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for (p, _, _), o in self._state.objects.items() if p == plural]

    def _set_status(self, plural: str, ns: str, name: str, status: dict[str, Any]) -> None:
        with self._lock:
            obj = self._state.objects[(plural, ns, name)]
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = self._next_rv()

    def mark_deployment_ready(self, ns: str, name: str) -> None:
        """What the deployment controller writes once every replica is updated and available."""
        obj = self.get("deployments", ns, name)
        assert obj is not None, f"no deployment {ns}/{name}"
        replicas = obj["spec"].get("replicas", 1)
        now = _now()
        self._set_status(
            "deployments",
            ns,
            name,
            {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": now,
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "NewReplicaSetAvailable",
                        "message": f'ReplicaSet "{name}-5d9c7b" has successfully progressed.',
                        "lastUpdateTime": now,
                        "lastTransitionTime": now,
                    },
                ],
            },
        )

    def accept_route(self, ns: str, name: str) -> None:
        """What a Gateway controller writes once it has programmed the route."""
        obj = self.get("httproutes", ns, name)
        assert obj is not None, f"no httproute {ns}/{name}"
        generation = obj["metadata"].get("generation", 1)
        parents = [
            {
                "parentRef": parent,
                "controllerName": "example.com/fake-gateway-controller",
                "conditions": [
                    {
                        "type": "Accepted",
                        "status": "True",
                        "reason": "Accepted",
                        "message": "Route is accepted",
                        "observedGeneration": generation,
                        "lastTransitionTime": _now(),
                    }
                ],
            }
            for parent in obj["spec"].get("parentRefs", [])
        ]
        self._set_status("httproutes", ns, name, {"parents": parents})

    def mark_progress_deadline_exceeded(self, ns: str, name: str) -> None:
        obj = self.get("deployments", ns, name)
        assert obj is not None, f"no deployment {ns}/{name}"
        replicas = obj["spec"].get("replicas", 1)
        now = _now()
        self._set_status(
            "deployments",
            ns,
            name,
            {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "unavailableReplicas": replicas,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "False",
                        "reason": "MinimumReplicasUnavailable",
                        "message": "Deployment does not have minimum availability.",
                        "lastUpdateTime": now,
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f'ReplicaSet "{name}-5d9c7b" has timed out progressing.',
                        "lastUpdateTime": now,
                        "lastTransitionTime": now,
                    },
                ],
            },
        )

    # ------------------------------------------------------------------ HTTP handling

    def _next_rv(self) -> str:
        self._state.resource_version += 1
        return str(self._state.resource_version)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.method == method and fault.path.search(path) and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._state.faults.remove(fault)
                    return fault
        return None

    def _dispatch(self, method: str, raw_path: str, raw: bytes, ctype: str) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        body = json.loads(raw) if raw else None
        fault = self._take_fault(method, parts.path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
            fault = None
        if fault is not None:
            reason = {409: "Conflict", 422: "Invalid", 403: "Forbidden", 404: "NotFound"}.get(
                fault.status, "InternalError"
            )
            code, out = fault.status, status_object(fault.status, reason, "injected fault")
        else:
            with self._lock:
                code, out = self._route(method, parts.path, query, body, ctype)
                self._auto_ready_after(method, parts.path, code, out)
        with self._lock:
            self._state.log.append(LoggedRequest(method, parts.path, query, code, body))
        return code, out

    def _auto_ready_after(self, method: str, path: str, code: int, out: Any) -> None:
        """With `auto_ready`, play the deployment controller: a written Deployment with
        replicas > 0 becomes ready at once (pods we cannot run here). With
        `gateway_controller`, a written HTTPRoute is accepted by its parent Gateways."""
        if method not in {"POST", "PUT", "PATCH"} or code >= 300 or not isinstance(out, dict):
            return
        if "/httproutes" in path and not path.endswith("/status") and self.gateway_controller:
            self.accept_route(out["metadata"].get("namespace", "default"), out["metadata"]["name"])
            return
        if not self.auto_ready:
            return
        if "/deployments" not in path or path.endswith("/status") or not isinstance(out, dict):
            return
        meta = out.get("metadata") or {}
        if (out.get("spec") or {}).get("replicas", 1) > 0 and meta.get("name"):
            self.mark_deployment_ready(meta.get("namespace", "default"), meta["name"])

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, ctype: str
    ) -> tuple[int, Any]:
        match = _PATH.match(path)
        kind = None
        if match:
            kind = next(
                (
                    k
                    for k in KINDS
                    if k.prefix == match.group("prefix") and k.plural == match.group("plural")
                ),
                None,
            )
        if kind is None:
            return 404, status_object(404, "NotFound", f"the server could not find {path}")
        ns, name, sub = match.group("ns"), match.group("name"), match.group("sub")
        if name is None:
            if method == "GET":
                return self._list(kind, ns, (query.get("labelSelector") or [""])[0])
            if method == "POST":
                return self._create(kind, ns, body)
            return 405, status_object(405, "MethodNotAllowed", f"{method} not allowed")
        key = (kind.plural, ns, name)
        current = self._state.objects.get(key)
        if current is None:
            return 404, self._not_found(kind, name)
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method == "DELETE":
            del self._state.objects[key]
            return 200, copy.deepcopy(current)
        if method == "PUT":
            return self._update(kind, ns, name, current, body, sub)
        if method == "PATCH":
            if "merge-patch" not in ctype and "strategic-merge-patch" not in ctype:
                return 415, status_object(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {ctype}",
                )
            # Strategic merge is served as a JSON merge patch: list merge keys are not modelled.
            merged = _merge_patch(current, body)
            merged["metadata"]["resourceVersion"] = (body.get("metadata") or {}).get(
                "resourceVersion", current["metadata"]["resourceVersion"]
            )
            return self._update(kind, ns, name, current, merged, sub)
        return 405, status_object(405, "MethodNotAllowed", f"{method} not allowed")

    def _not_found(self, kind: Kind, name: str) -> dict[str, Any]:
        resource = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
        return status_object(
            404,
            "NotFound",
            f'{resource} "{name}" not found',
            {"name": name, "group": kind.group, "kind": kind.plural},
        )

    def _list(self, kind: Kind, ns: str, selector: str) -> tuple[int, Any]:
        try:
            matches = label_selector_matcher(selector)
        except ValueError as exc:
            return 400, status_object(400, "BadRequest", str(exc))
        items = [
            copy.deepcopy(obj)
            for (plural, obj_ns, _), obj in sorted(self._state.objects.items())
            if plural == kind.plural
            and obj_ns == ns
            and matches(obj["metadata"].get("labels") or {})
        ]
        return 200, {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self._state.resource_version)},
            "items": items,
        }

    def _invalid(self, kind: Kind, error: Invalid) -> tuple[int, Any]:
        self._state.invalid.append(error)
        return 422, status_object(
            422,
            "Invalid",
            str(error),
            {
                "name": error.name,
                "group": kind.group,
                "kind": kind.kind,
                "causes": [
                    {"reason": "FieldValueInvalid", "message": m, "field": f}
                    for f, m in error.causes
                ],
            },
        )

    def _check_identity(self, kind: Kind, ns: str, body: Any) -> tuple[int, Any] | None:
        if (
            not isinstance(body, dict)
            or body.get("kind") != kind.kind
            or body.get("apiVersion") != kind.api_version
        ):
            return 400, status_object(400, "BadRequest", f"expected {kind.api_version} {kind.kind}")
        body_ns = (body.get("metadata") or {}).get("namespace")
        if body_ns not in (None, ns):
            return 400, status_object(
                400, "BadRequest", "the namespace of the provided object does not match"
            )
        return None

    def _create(self, kind: Kind, ns: str, body: Any) -> tuple[int, Any]:
        bad = self._check_identity(kind, ns, body)
        if bad:
            return bad
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        if (kind.plural, ns, name) in self._state.objects:
            resource = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            return 409, status_object(
                409,
                "AlreadyExists",
                f'{resource} "{name}" already exists',
                {"name": name, "group": kind.group, "kind": kind.plural},
            )
        meta.pop("resourceVersion", None)
        meta.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            creationTimestamp=_now(),
            generation=1,
        )
        # The status of a new object is the server's to write, never the client's.
        obj.pop("status", None)
        initial_status = _INITIAL_STATUS.get(kind.kind)
        if initial_status is not None:
            obj["status"] = copy.deepcopy(initial_status)
        if kind.kind == "Service":
            obj["spec"].setdefault("clusterIP", f"10.96.0.{len(self._state.objects) % 250 + 2}")
        try:
            validate_object(obj)
        except Invalid as error:
            return self._invalid(kind, error)
        meta["resourceVersion"] = self._next_rv()
        self._state.objects[(kind.plural, ns, name)] = obj
        return 201, copy.deepcopy(obj)

    def _update(
        self, kind: Kind, ns: str, name: str, current: dict[str, Any], body: Any, sub: str | None
    ) -> tuple[int, Any]:
        bad = self._check_identity(kind, ns, body)
        if bad:
            return bad
        meta = body.get("metadata") or {}
        if meta.get("name") != name:
            return 400, status_object(400, "BadRequest", "the name of the object does not match")
        precondition = meta.get("resourceVersion")
        if precondition and precondition != current["metadata"]["resourceVersion"]:
            resource = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            return 409, status_object(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": kind.group, "kind": kind.plural},
            )
        updated = copy.deepcopy(current)
        if sub == "status":
            # /status writes status only; spec and metadata stay as they are.
            updated["status"] = copy.deepcopy(body.get("status") or {})
        else:
            # Writes to the main resource never change status.
            new_meta = copy.deepcopy(meta)
            for owned in ("uid", "creationTimestamp", "generation", "namespace"):
                new_meta[owned] = current["metadata"][owned]
            updated = {**copy.deepcopy(body), "metadata": new_meta}
            updated.pop("status", None)
            if "status" in current:
                updated["status"] = copy.deepcopy(current["status"])
            if kind.kind == "Service" and "clusterIP" not in updated.get("spec", {}):
                updated["spec"]["clusterIP"] = current["spec"].get("clusterIP")
            if updated.get("spec") != current.get("spec"):
                new_meta["generation"] = current["metadata"]["generation"] + 1
        try:
            validate_object(updated)
        except Invalid as error:
            return self._invalid(kind, error)
        unchanged = {k: v for k, v in updated.items() if k != "metadata"} == {
            k: v for k, v in current.items() if k != "metadata"
        } and _comparable_meta(updated) == _comparable_meta(current)
        if unchanged:
            # A no-op update keeps its resourceVersion, as on a real API server.
            return 200, copy.deepcopy(current)
        updated["metadata"]["resourceVersion"] = self._next_rv()
        self._state.objects[(kind.plural, ns, name)] = updated
        return 200, copy.deepcopy(updated)


# What the API server's create strategies leave in status (Go zero values that are not
# omitempty); a custom resource gets no status until a controller writes one.
_INITIAL_STATUS: dict[str, dict[str, Any]] = {
    "Deployment": {},
    "Service": {"loadBalancer": {}},
    "HorizontalPodAutoscaler": {"desiredReplicas": 0},
}


def _comparable_meta(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
