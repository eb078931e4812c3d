"""`claw serve`: one model behind the Open Inference Protocol (KServe v2) REST API, stdlib only.

Threads: one per HTTP connection (at most `max_connections`, so an idle crowd cannot exhaust the board), and
`workers` inference threads fed by a queue of at most `queue_size` waiting requests. A request that finds the
queue full is answered 503 at once: under overload, memory and latency stay bounded and clients back off,
instead of requests piling up until the board runs out of memory. The session is shared by the workers;
one worker (the default) never runs it concurrently.

Shutdown (SIGTERM/SIGINT, see run_until_signalled): stop accepting connections, answer requests that arrive
on open connections with 503, let the requests in flight finish, then stop the workers.

Every request is logged as one JSON line (method, path, status, duration_ms, model), as are start and stop.
"""
from __future__ import annotations

import json
import queue
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import numpy as np

from .. import __version__
from ..errors import ClawError, InputError
from . import protocol
from .protocol import ProtocolError

MODEL_VERSION = "1"  # one model per server, so one version; clients that name no version get this one


# -- metrics -----------------------------------------------------------------------------------------------
class _Histogram:
    BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self):
        self.counts = [0] * len(self.BUCKETS)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        for k, bound in enumerate(self.BUCKETS):
            if seconds <= bound:
                self.counts[k] += 1
                break
        self.sum += seconds
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, cumulative = [], 0
        for bound, n in zip(self.BUCKETS, self.counts):
            cumulative += n
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.sum!r}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters for /metrics. Updated from many threads, so behind one lock; reads take a consistent copy."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.inferences = {"success": 0, "invalid_input": 0, "error": 0}
        self.request_seconds = _Histogram()  # an infer request end to end, queue wait included
        self.compute_seconds = _Histogram()  # session.run alone

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (endpoint, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            if endpoint == "infer" and status == 200:
                self.request_seconds.observe(seconds)

    def inference(self, outcome: str, seconds: float) -> None:
        with self._lock:
            self.inferences[outcome] += 1
            self.compute_seconds.observe(seconds)

    def render(self, model: str, gauges: dict[str, tuple[str, float]]) -> str:
        m = f'model="{_label(model)}"'
        with self._lock:
            lines = ["# HELP claw_http_requests_total HTTP requests answered, by endpoint and status code.",
                     "# TYPE claw_http_requests_total counter"]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(f'claw_http_requests_total{{endpoint="{endpoint}",code="{status}"}} {n}')
            lines += ["# HELP claw_inferences_total Inferences run by the model, by outcome.",
                      "# TYPE claw_inferences_total counter"]
            for outcome, n in self.inferences.items():
                lines.append(f'claw_inferences_total{{{m},outcome="{outcome}"}} {n}')
            lines += [("# HELP claw_request_duration_seconds Successful infer requests, from the request "
                       "received to the response ready (queue wait included)."),
                      "# TYPE claw_request_duration_seconds histogram",
                      *self.request_seconds.lines("claw_request_duration_seconds", m),
                      "# HELP claw_inference_duration_seconds Time the model takes to run one request.",
                      "# TYPE claw_inference_duration_seconds histogram",
                      *self.compute_seconds.lines("claw_inference_duration_seconds", m)]
        for name, (doc, value) in gauges.items():
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name}{{{m}}} {value:g}"]
        return "\n".join(lines) + "\n"


# -- the inference queue -----------------------------------------------------------------------------------
class QueueFull(Exception):
    pass


class _Job:
    __slots__ = ("done", "error", "feeds", "result")

    def __init__(self, feeds: dict[str, np.ndarray]):
        self.feeds = feeds
        self.done = threading.Event()
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None


class Runner:
    """`workers` threads running `session` on jobs from a queue of at most `queue_size`."""

    def __init__(self, session, metrics: Metrics, *, workers: int = 1, queue_size: int = 16):
        if workers < 1 or queue_size < 1:
            raise ValueError("workers and queue_size must be at least 1")  # Queue(0) would be unbounded
        self.session = session
        self.metrics = metrics
        self.queue_size = queue_size
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"claw-worker-{k}", daemon=True)
                         for k in range(workers)]

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def busy(self) -> int:
        return self._busy

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def submit(self, feeds: dict[str, np.ndarray]) -> _Job:
        job = _Job(feeds)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull from None
        return job

    def stop(self, timeout: float = 10.0) -> None:
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return  # workers stuck in a model: they are daemon threads and end with the process
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._busy_lock:
                self._busy += 1
            t0 = time.perf_counter()
            try:
                job.result = self.session.run(job.feeds)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting request, which answers it
                job.error = e
            finally:
                outcome = ("success" if job.error is None else
                           "invalid_input" if isinstance(job.error, InputError) else "error")
                self.metrics.inference(outcome, time.perf_counter() - t0)
                with self._busy_lock:
                    self._busy -= 1
                job.feeds = None  # the request's arrays are not kept alive by a finished job
                job.done.set()


# -- the service: routes to responses, independent of the socket plumbing ----------------------------------
@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # for the log line


def _json(status: int, obj: Any) -> Response:
    return Response(status, json.dumps(obj).encode())


def _error(status: int, message: str, **headers: str) -> Response:
    return Response(status, protocol.error_body(message), headers=dict(headers), error=message)


@dataclass
class Route:
    endpoint: str  # a fixed name per route: the metrics' label, whose values must not grow with paths
    model: str | None = None
    version: str | None = None


_MODEL_ROUTES = {("GET", ""): "model_metadata", ("GET", "ready"): "model_ready", ("POST", "infer"): "infer"}


def route(method: str, target: str) -> Route | Response:
    """The Route for a request line, or the 404/405 Response for one that names no endpoint."""
    path = urlsplit(target).path
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    fixed = {("v2", "health", "live"): "health_live", ("v2", "health", "ready"): "health_ready",
             ("v2",): "server_metadata", ("metrics",): "metrics"}
    if tuple(parts) in fixed:
        if method != "GET":
            return _error(405, f"{method} {path}: only GET is allowed", Allow="GET")
        return Route(fixed[tuple(parts)])
    if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
        name, rest, version = parts[2], parts[3:], None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if len(rest) <= 1:
            action = rest[0] if rest else ""
            allowed = [m for (m, a) in _MODEL_ROUTES if a == action]
            if allowed and method in allowed:
                return Route(_MODEL_ROUTES[(method, action)], name, version)
            if allowed:
                return _error(405, f"{method} {path}: only {', '.join(allowed)} is allowed", Allow=allowed[0])
    return _error(404, f"no endpoint {method} {path}; this server speaks the KServe v2 REST API under /v2")


class Service:
    """Answers routed requests for one model: metadata, health, metrics, and inference through a Runner."""

    def __init__(self, session, name: str, *, workers: int = 1, queue_size: int = 16):
        self.session = session
        self.name = name
        self.metrics = Metrics()
        self.runner = Runner(session, self.metrics, workers=workers, queue_size=queue_size)
        self.draining = False
        self._in_flight = 0
        self._idle = threading.Condition()

    # requests in flight, for a drain that waits for them
    def enter(self) -> None:
        with self._idle:
            self._in_flight += 1

    def leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _check_model(self, r: Route) -> None:
        if r.model != self.name:
            raise ProtocolError(f"unknown model {r.model!r}; this server serves {self.name!r}", 404)
        if r.version not in (None, "", MODEL_VERSION):
            raise ProtocolError(f"model {r.model!r} has no version {r.version!r}; it has version "
                                f"{MODEL_VERSION!r}", 404)

    def respond(self, r: Route, body: bytes | bytearray, headers) -> Response:
        e = r.endpoint
        if e == "health_live":
            return _json(200, {"live": True})
        if e == "health_ready":
            # The protocol's "false" is a 4xx; a draining server is not ready for new work.
            return _json(400 if self.draining else 200, {"ready": not self.draining})
        if e == "server_metadata":
            return _json(200, protocol.server_metadata(__version__))
        if e == "metrics":
            return Response(200, self.render_metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        self._check_model(r)
        if e == "model_metadata":
            return _json(200, protocol.model_metadata(self.name, MODEL_VERSION, self.session.inputs,
                                                      self.session.outputs))
        if e == "model_ready":
            return _json(400 if self.draining else 200, {"name": self.name, "ready": not self.draining})
        return self.infer(body, headers)

    def infer(self, body: bytes | bytearray, headers) -> Response:
        if self.draining:
            return _error(503, "the server is shutting down")
        raw = headers.get(protocol.HEADER_LENGTH)
        try:
            header_length = None if raw is None else int(raw)
        except ValueError:
            raise ProtocolError(f"{protocol.HEADER_LENGTH} header {raw!r} is not an integer") from None
        req = protocol.decode_infer_request(body, header_length, self.session.inputs, self.session.outputs)
        try:
            job = self.runner.submit(req.inputs)
        except QueueFull:
            return _error(503, f"server busy: {self.runner.queue_size} inference requests already waiting "
                               f"(the queue is full); retry later", **{"Retry-After": "1"})
        job.done.wait()
        if isinstance(job.error, InputError):
            raise ProtocolError(str(job.error))
        if job.error is not None:
            raise job.error
        out, header_length = protocol.encode_infer_response(self.name, MODEL_VERSION, job.result, req.outputs,
                                                            req.id)
        if header_length is None:
            return Response(200, out)
        return Response(200, out, "application/octet-stream", {protocol.HEADER_LENGTH: str(header_length)})

    def render_metrics(self) -> str:
        return self.metrics.render(self.name, {
            "claw_queue_depth": ("Inference requests waiting for a worker.", self.runner.depth),
            "claw_queue_capacity": ("Most inference requests that may wait (--queue); more get 503.",
                                    self.runner.queue_size),
            "claw_inferences_running": ("Inference requests a worker is running now.", self.runner.busy),
            "claw_http_requests_in_flight": ("HTTP requests being answered now.", self.in_flight),
        })


# -- HTTP ----------------------------------------------------------------------------------------------------
class JsonLog:
    """One JSON object per line; a lock keeps lines from different threads whole."""

    def __init__(self, stream: TextIO | None):
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        if self.stream is None:
            return
        record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed log must not take requests down with it


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: tritonclient reuses its connections
    server_version = f"clawdbot/{__version__}"
    disable_nagle_algorithm = True  # headers and body go out as two writes; no 40 ms delayed-ACK stall
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout
        super().setup()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        srv = self.server
        service = srv.service
        t0 = time.perf_counter()
        r: Route | Response = Route("other")
        resp = _error(500, "internal error: no response")  # replaced below unless a BaseException escapes
        service.enter()
        try:
            try:
                r = route(self.command, self.path)
                body = self._read_body()  # even for a 404: an unread body would be taken for the next request
                resp = r if isinstance(r, Response) else service.respond(r, body, self.headers)
                if isinstance(r, Route) and r.endpoint == "infer" and resp.status == 200:
                    resp = self._compress(resp)
            except ProtocolError as e:
                resp = _error(e.status, str(e))
            except ClawError as e:  # the model failed on valid input: the server's problem, not the client's
                resp = _error(500, f"inference failed: {e}")
            except Exception as e:  # noqa: BLE001 - a bug must cost one request, not the connection thread
                resp = _error(500, f"internal error: {type(e).__name__}: {e}")
                srv.log("error", path=self.path, traceback=traceback.format_exc())
            if service.draining:
                self.close_connection = True
            self._send(resp)
        finally:
            seconds = time.perf_counter() - t0
            route_ = r if isinstance(r, Route) else Route("other")
            service.metrics.request(route_.endpoint, resp.status, seconds)
            fields = {"method": self.command, "path": self.path, "status": resp.status,
                      "duration_ms": round(seconds * 1000, 3), "model": route_.model}
            if resp.error:
                fields["error"] = resp.error
            srv.log("request", **fields)
            service.leave()  # last: a drain that sees no request in flight finds its line logged and counted

    def _read_body(self) -> bytes | bytearray:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ProtocolError("chunked request bodies are not supported; send Content-Length", 411)
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ProtocolError(f"Content-Length {raw!r} is not a byte count") from None
        limit = self.server.max_body_bytes
        if length > limit:
            self.close_connection = True  # the unread body would be taken for the next request
            raise ProtocolError(f"request body of {length} bytes is over the {limit}-byte limit", 413)
        body = bytearray(length)  # writable, so binary inputs become writable arrays without a copy
        view, got = memoryview(body), 0
        while got < length:
            n = self.rfile.readinto(view[got:])
            if not n:
                self.close_connection = True
                raise ProtocolError(f"request body ended after {got} of {length} bytes")
            got += n
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("gzip", "deflate"):
            return self._decompress(body, encoding, limit)
        if encoding not in ("identity", ""):
            raise ProtocolError(f"Content-Encoding {encoding!r} is not supported (gzip, deflate are)", 415)
        return body

    @staticmethod
    def _decompress(body: bytearray, encoding: str, limit: int) -> bytes:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            out = d.decompress(body, limit + 1)  # a zip bomb stops at the body limit
        except zlib.error as e:
            raise ProtocolError(f"request body is not valid {encoding} data: {e}") from None
        if len(out) > limit or d.unconsumed_tail:
            raise ProtocolError(f"decompressed request body is over the {limit}-byte limit", 413)
        if not d.eof:
            raise ProtocolError(f"request body is truncated {encoding} data")
        return out

    def _compress(self, resp: Response) -> Response:
        accepted = [a.split(";")[0].strip().lower() for a in self.headers.get("Accept-Encoding", "").split(",")]
        for encoding, wbits in (("gzip", 16 + zlib.MAX_WBITS), ("deflate", zlib.MAX_WBITS)):
            if encoding in accepted:
                c = zlib.compressobj(wbits=wbits)
                resp.body = c.compress(resp.body) + c.flush()
                resp.headers["Content-Encoding"] = encoding
                break
        return resp

    def _send(self, resp: Response) -> None:
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for k, v in resp.headers.items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(resp.body)
        except OSError:
            self.close_connection = True  # the client left; nobody to tell

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed request lines and unknown methods are answered by http.server itself: in KServe's form.
        self.close_connection = True
        msg = message or self.responses.get(code, ("error",))[0]
        resp = _error(code, msg)
        self._send(resp)
        self.server.service.metrics.request("other", code, 0.0)
        self.server.log("request", method=getattr(self, "command", None) or None,
                        path=getattr(self, "path", None), status=code, duration_ms=0.0, model=None, error=msg)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every request gets one JSON line from _handle instead


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not keep a stopped server's process alive
    allow_reuse_address = True

    def __init__(self, address, service: Service, log: JsonLog, *, max_connections: int, max_body_bytes: int,
                 idle_timeout: float):
        self.service = service
        self.log = log
        self.max_connections = max_connections
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's full name: on an offline board that can hang for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request, client_address) -> None:
        with self._conn_lock:
            full = len(self._connections) >= self.max_connections
            if not full:
                self._connections.add(request)
        if full:
            self._refuse(request)
            return
        super().process_request(request, client_address)

    def _refuse(self, request: socket.socket) -> None:
        body = protocol.error_body(f"too many connections (at most {self.max_connections}); retry later")
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").encode()
        try:
            request.settimeout(1.0)
            request.sendall(head + body)
        except OSError:
            pass
        self.service.metrics.request("other", 503, 0.0)
        self.log("request", method=None, path=None, status=503, duration_ms=0.0, model=None,
                 error="too many connections")
        self.shutdown_request(request)

    def shutdown_request(self, request) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_idle_connections(self) -> None:
        """Wake the threads waiting for a next request on a kept-alive connection, so they end now."""
        with self._conn_lock:
            conns = list(self._connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hangs up mid-request is no server error
        self.log("error", client=str(client_address), traceback=traceback.format_exc())


class InferenceServer:
    """A KServe v2 REST server for one session (anything with `inputs`, `outputs` and `run(feeds)`).

        with InferenceServer(clawdbot.load("m.claw"), "m", port=0) as srv:
            print(srv.url)        # port=0 picks a free port; srv.port says which

    stop() is the graceful shutdown: it returns once requests in flight have been answered (or `drain_timeout`
    has passed), and the workers have stopped."""

    def __init__(self, session, name: str, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
                 queue_size: int = 16, log: TextIO | None = None, max_connections: int = 128,
                 max_body_bytes: int = 256 << 20, idle_timeout: float = 120.0, bundle: str | None = None):
        if not name or "/" in name:
            raise ClawError(f"model name {name!r} must be non-empty and without '/' (it is a URL path segment)")
        if workers < 1:
            raise ClawError(f"--workers must be at least 1, got {workers}")
        if queue_size < 1:
            raise ClawError(f"--queue must be at least 1, got {queue_size}")
        self.name = name
        self.bundle = bundle  # the bundle the model came from, for the start line
        self.log = JsonLog(log)
        self.service = Service(session, name, workers=workers, queue_size=queue_size)
        try:
            self._httpd = _HTTPServer((host, port), self.service, self.log, max_connections=max_connections,
                                      max_body_bytes=max_body_bytes, idle_timeout=idle_timeout)
        except OSError as e:
            raise ClawError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        self.host, self.port = self._httpd.server_address[:2]
        self._workers = workers
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._stopped = False

    @property
    def address(self) -> str:
        """host:port, as tritonclient takes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> InferenceServer:
        self.service.runner.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="claw-http", daemon=True)
        self._thread.start()
        self._started = time.monotonic()
        s = self.service.session
        self.log("start", model=self.name, url=self.url, host=self.host, port=self.port, workers=self._workers,
                 queue=self.service.runner.queue_size, version=__version__, bundle=self.bundle,
                 inputs=[str(t) for t in s.inputs], outputs=[str(t) for t in s.outputs])
        return self

    def stop(self, drain_timeout: float = 30.0) -> bool:
        """Stop accepting, finish what is in flight, stop the workers. True when nothing was cut short."""
        if self._stopped:
            return True
        self._stopped = True
        self.service.draining = True
        if self._thread is None:  # never started
            self._httpd.server_close()
            return True
        self._httpd.shutdown()  # the accept loop ends; the listening socket closes just below
        self._thread.join()
        self._httpd.socket.close()
        drained = self.service.wait_idle(drain_timeout)
        self._httpd.close_idle_connections()
        self.service.runner.stop()
        self.log("stop", model=self.name, drained=drained,
                 uptime_s=round(time.monotonic() - self._started, 3) if self._started else 0.0)
        return drained

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_until_signalled(server: InferenceServer, *, drain_timeout: float = 30.0,
                        on_start: Callable[[InferenceServer], None] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; 0 when everything in flight was answered.

    Call from the main thread (signal handlers live there). A second signal during the drain ends the process
    the default way."""
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum, frame) -> None:
        received.append(signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        if on_start is not None:
            on_start(server)
        while not stop.wait(1.0):
            pass
        server.log("stopping", model=server.name, signal=received[0] if received else None,
                   in_flight=server.service.in_flight)
        drained = server.stop(drain_timeout)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 0 if drained else 1


def serve(model: str, *, host: str = "0.0.0.0", port: int = 8000, name: str | None = None, queue_size: int = 16,
          workers: int = 1, log: TextIO | None = sys.stderr) -> int:
    """`claw serve`: load `model` (.claw or .onnx, or a bundle: .tar.gz or its directory) once and serve it
    until SIGTERM/SIGINT."""
    from .. import load
    from .source import model_source
    with model_source(model) as src:
        session = load(src.path)
        return run_until_signalled(InferenceServer(session, name or src.name, host=host, port=port,
                                                   workers=workers, queue_size=queue_size, log=log,
                                                   bundle=src.bundle_id))
