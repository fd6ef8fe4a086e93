"""A small, faithful-where-it-matters Kubernetes API server for tests: a real HTTP server on
127.0.0.1 that the official client talks to. It stores Deployments (+ /status), Services,
autoscaling/v2 HPAs and Gateway API v1 HTTPRoutes as kube-apiserver 1.36 stores them: with the
server's defaults filled in and quantities in canonical form (checked against the objects a
real 1.36.2 server stored, tests/k8s/data/real-apiserver-1.36). It has resourceVersion
preconditions, 409/404 Status objects, generation bumps on spec change, label selectors,
merge-patch, schema validation of every write (422 Invalid), fault injection, and a Gateway
controller the test drives (`gateway`): a route is Accepted only when that controller says so.

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

from deployments.runtime.k8s_objects import canonical_quantity, quantity_value
from tests.k8s.schemas import Invalid, apply_httproute_defaults, validate_object


@dataclass(frozen=True)
class Kind:
    prefix: str  # "/apis/apps/v1" or "/api/v1"
    plural: str
    kind: str
    api_version: str
    group: str  # for Status details, "" for core
    generation: bool  # metadata.generation is kept (Deployments, custom resources)


KINDS = [
    Kind("/apis/apps/v1", "deployments", "Deployment", "apps/v1", "apps", True),
    Kind("/api/v1", "services", "Service", "v1", "", False),
    Kind(
        "/apis/autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
        "autoscaling",
        False,
    ),
    Kind(
        "/apis/gateway.networking.k8s.io/v1",
        "httproutes",
        "HTTPRoute",
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io",
        True,
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
    at: float = field(default_factory=time.time)  # when it was answered (wall clock)


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


class FakeGatewayController:
    """The controller of the Gateway that HTTPRoutes attach to. On a cluster, the controller
    writes a route's `status.parents` once it has programmed the route; until then nothing does,
    and the API server writes no status of its own. Here the test says when: `accept` or
    `reject` one route, or `accept_automatically()` to accept every route as it is written
    (the mode of tests that are not about the Gateway)."""

    CONTROLLER_NAME = "example.com/fake-gateway-controller"

    def __init__(self, server: FakeApiServer, *, automatic: bool) -> None:
        self._server = server
        self.automatic = automatic

    def accept_automatically(self) -> None:
        self.automatic = True

    def hold(self) -> None:
        """From now on, routes wait for `accept` (or `reject`)."""
        self.automatic = False

    def accept(self, ns: str, name: str) -> None:
        """Accepted at the route's current generation, by every parent it names."""
        self._write(ns, name, "True", "Accepted", "Route is accepted")

    def reject(
        self,
        ns: str,
        name: str,
        reason: str = "NotAllowedByListeners",
        message: str = "No listener of the Gateway allows routes from this namespace",
    ) -> None:
        self._write(ns, name, "False", reason, message)

    def route_written(self, ns: str, name: str) -> None:
        if self.automatic:
            self.accept(ns, name)

    def _write(self, ns: str, name: str, accepted: str, reason: str, message: str) -> None:
        route = self._server.get("httproutes", ns, name)
        assert route is not None, f"no httproute {ns}/{name}"
        route["status"] = route_status(route, accepted, reason, message)
        validate_object(route)  # what the real API server would take from a controller
        self._server._set_status("httproutes", ns, name, route["status"])


def route_status(route: dict[str, Any], accepted: str, reason: str, message: str) -> dict[str, Any]:
    """The status a Gateway controller writes on a route: for every parent the route names, an
    Accepted condition ("True" or "False") at the route's current generation."""
    return {
        "parents": [
            {
                "parentRef": parent,
                "controllerName": FakeGatewayController.CONTROLLER_NAME,
                "conditions": [
                    {
                        "type": "Accepted",
                        "status": accepted,
                        "reason": reason,
                        "message": message,
                        "observedGeneration": route["metadata"].get("generation", 1),
                        "lastTransitionTime": _now(),
                    }
                ],
            }
            for parent in route["spec"].get("parentRefs", [])
        ]
    }


class FakeApiServer:
    """Start with `start()`, point a client at `api_client()`, stop with `stop()`.

    `auto_accept_routes=False` is how a cluster behaves: a route is Accepted only when the test
    says so through `gateway`. The default (True) keeps the engine tests, which are not about
    the Gateway, walking."""

    def __init__(self, *, auto_accept_routes: bool = True) -> None:
        self._lock = threading.RLock()
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Engine and end-to-end tests set this: Deployments become ready as soon as written.
        self.auto_ready = False
        self.gateway = FakeGatewayController(self, automatic=auto_accept_routes)

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
        replicas > 0 becomes ready at once (pods we cannot run here). A written HTTPRoute is
        shown to the Gateway controller, which accepts it if it is automatic."""
        if method not in {"POST", "PUT", "PATCH"} or code >= 300 or not isinstance(out, dict):
            return
        if "/httproutes" in path and not path.endswith("/status"):
            meta = out["metadata"]
            self.gateway.route_written(meta.get("namespace", "default"), meta["name"])
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
        if method == "GET" and path.rstrip("/") == "/api/v1/nodes":
            # A cluster without a kubelet, like the one the stored objects came from.
            return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": []}
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

    def _bad_request(self, kind: Kind, error: BadRequest) -> tuple[int, Any]:
        version = kind.api_version.rpartition("/")[2]
        return 400, status_object(
            400,
            "BadRequest",
            f'{kind.kind} in version "{version}" cannot be handled as a {kind.kind}: {error}',
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
        meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now())
        if kind.generation:
            meta["generation"] = 1
        # The status of a new object is the server's to write, never the client's.
        obj.pop("status", None)
        initial_status = _INITIAL_STATUS.get(kind.kind)
        if initial_status is not None:
            obj["status"] = copy.deepcopy(initial_status)
        if kind.kind == "Service":
            obj.setdefault("spec", {}).setdefault(
                "clusterIP", f"10.96.0.{len(self._state.objects) % 250 + 2}"
            )
        try:
            stored_form(kind.kind, obj)
            validate_object(obj)
        except BadRequest as error:
            return self._bad_request(kind, error)
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
                new_meta.pop(owned, None)
                if owned in current["metadata"]:
                    new_meta[owned] = current["metadata"][owned]
            updated = {**copy.deepcopy(body), "metadata": new_meta}
            updated.pop("status", None)
            if "status" in current:
                updated["status"] = copy.deepcopy(current["status"])
            if kind.kind == "Service":
                # An update that leaves out the allocated addresses keeps them.
                spec = updated.setdefault("spec", {})
                for allocated in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if allocated not in spec and allocated in current["spec"]:
                        spec[allocated] = copy.deepcopy(current["spec"][allocated])
            try:
                stored_form(kind.kind, updated)
            except BadRequest as error:
                return self._bad_request(kind, error)
            except Invalid as error:
                return self._invalid(kind, error)
            # Compared as stored: a body that differs from the live object only by defaults or
            # by the spelling of a quantity changes nothing.
            if kind.generation and updated.get("spec") != current.get("spec"):
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
    "HorizontalPodAutoscaler": {"currentMetrics": None, "desiredReplicas": 0},
}


# What kube-apiserver 1.36 stores ----------------------------------------------------------------
# Defaults (k8s.io/kubernetes pkg/apis/*/v1/defaults.go, and the HTTPRoute CRD's schema) and
# canonical quantities, for the kinds and fields the runtime writes. Checked against what a real
# 1.36.2 server stored: tests/k8s/data/real-apiserver-1.36 and test_fake_apiserver.py.

# The pattern kube-apiserver quotes when a quantity does not parse (a 400, not a 422: the body
# cannot even be decoded).
_QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


class BadRequest(Exception):
    """A body the API server cannot decode: 400 BadRequest."""


def stored_form(kind: str, obj: dict[str, Any]) -> None:
    """Turn `obj` (a body just written) into what the API server stores, in place. Raises
    BadRequest for a quantity that does not parse, Invalid for one it refuses."""
    spec = obj.setdefault("spec", {})
    name = (obj.get("metadata") or {}).get("name", "")
    if kind == "Deployment":
        _default_deployment(spec)
        causes: list[tuple[str, str]] = []
        pod = spec["template"]["spec"]
        for i, container in enumerate(pod.get("containers") or []):
            _container_resources(container, f"spec.template.spec.containers[{i}].resources", causes)
        if causes:
            raise Invalid(kind, name, causes)
    elif kind == "Service":
        _default_service(spec)
    elif kind == "HorizontalPodAutoscaler":
        _default_hpa(spec)
    elif kind == "HTTPRoute":
        apply_httproute_defaults(obj)


def _default_deployment(spec: dict[str, Any]) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    _default_pod_spec(template.setdefault("spec", {}))


def _default_pod_spec(pod: dict[str, Any]) -> None:
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("securityContext", {})
    pod.setdefault("schedulerName", "default-scheduler")
    for container in pod.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _pull_policy(container.get("image", "")))
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
        for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if probe is None:
                continue
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            if "httpGet" in probe:
                probe["httpGet"].setdefault("scheme", "HTTP")


def _pull_policy(image: str) -> str:
    """Always for an untagged or `:latest` image, IfNotPresent for a tag or a digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _container_resources(
    container: dict[str, Any], where: str, causes: list[tuple[str, str]]
) -> None:
    resources = container.get("resources") or {}
    amounts: dict[str, dict[str, Any]] = {}
    for section in ("limits", "requests"):
        for resource, quantity in (resources.get(section) or {}).items():
            try:
                resources[section][resource] = canonical_quantity(str(quantity))
            except ValueError:
                raise BadRequest(
                    f"quantities must match the regular expression '{_QUANTITY_PATTERN}'"
                ) from None
            amount = quantity_value(resources[section][resource])
            amounts.setdefault(section, {})[resource] = amount
            if amount < 0:
                causes.append(
                    (
                        f"{where}.{section}[{resource}]",
                        f'Invalid value: "{quantity}": must be greater than or equal to 0',
                    )
                )
    for resource, request in (amounts.get("requests") or {}).items():
        limit = (amounts.get("limits") or {}).get(resource)
        if limit is not None and request > limit:
            causes.append(
                (
                    f"{where}.requests",
                    f'Invalid value: "{resources["requests"][resource]}": must be less than or '
                    f"equal to {resource} limit of {resources['limits'][resource]}",
                )
            )


def _default_service(spec: dict[str, Any]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _default_hpa(spec: dict[str, Any]) -> None:
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    for metric in spec["metrics"]:
        for source in metric.values():
            target = source.get("target") if isinstance(source, dict) else None
            for key in ("averageValue", "value"):
                if target and key in target:
                    try:
                        target[key] = canonical_quantity(str(target[key]))
                    except ValueError:
                        raise BadRequest(
                            f"quantities must match the regular expression '{_QUANTITY_PATTERN}'"
                        ) from None


def _comparable_meta(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
