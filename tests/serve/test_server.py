"""`claw serve` end to end with the real Triton client (tritonclient.http): metadata, JSON and binary inference
checked against onnxruntime, the error statuses, the bounded queue, a concurrent load, metrics, logs, and the
graceful shutdown of a real process on SIGTERM."""
from __future__ import annotations

import http.client
import io
import itertools
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import clawdbot
import numpy as np
import onnx
import pytest
import tritonclient.http as triton
from claw_testing import add_relu, assert_matches_range, ort_run
from clawdbot.cli import main
from clawdbot.serve import InferenceServer
from clawdbot.tools import zoo
from prometheus_client.parser import text_string_to_metric_families
from serve_testing import claw_serve, infer_input, log_records, start_line, wait_until
from tritonclient.utils import InferenceServerException

W = np.linspace(-2, 2, 4, dtype=np.float32)  # add_relu's constant


def expected_add_relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x + W, np.float32(0))


@pytest.fixture(scope="module")
def add_relu_session():
    return clawdbot.load(add_relu())


@pytest.fixture(scope="module")
def squeezenet():
    model = zoo.build("squeezenet1_1")
    return model, clawdbot.load(model)


@contextmanager
def serving(session, name="m", **kw):
    log = io.StringIO()
    srv = InferenceServer(session, name, host="127.0.0.1", port=0, log=log, **kw)
    srv.log_text = log.getvalue  # type: ignore[attr-defined]
    with srv:
        yield srv


def client(srv, **kw) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(srv.address, connection_timeout=30, network_timeout=30, **kw)


def raw_request(srv, method: str, path: str, body: bytes | None = None, headers=None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def metrics(srv_or_url) -> dict[tuple[str, tuple], float]:
    """Samples of /metrics as {(name, sorted labels): value}, through Prometheus' own parser."""
    if isinstance(srv_or_url, str):
        import urllib.request
        text = urllib.request.urlopen(srv_or_url + "/metrics", timeout=30).read().decode()
    else:
        status, headers, body = raw_request(srv_or_url, "GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(m: dict, name: str, **labels) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


class GatedSession:
    """A session whose run() waits for `gate`: a request can be held in a worker for as long as a test needs."""

    def __init__(self, session):
        self.session = session
        self.inputs, self.outputs = session.inputs, session.outputs
        self.gate = threading.Event()

    def run(self, feeds):
        assert self.gate.wait(30), "the test never opened the gate"
        return self.session.run(feeds)


# -- protocol over HTTP ------------------------------------------------------------------------------------------
def test_health_and_metadata(squeezenet):
    _, session = squeezenet
    with serving(session, "squeezenet") as srv:
        c = client(srv)
        assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("squeezenet")
        assert c.is_model_ready("squeezenet", model_version="1") and not c.is_model_ready("nope")
        meta = c.get_server_metadata()
        assert meta["name"] == "clawdbot" and "binary_tensor_data" in meta["extensions"]
        assert c.get_model_metadata("squeezenet") == {
            "name": "squeezenet", "versions": ["1"], "platform": "clawdbot",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}]}
        with pytest.raises(InferenceServerException) as e:
            c.get_model_metadata("nope")
        assert e.value.status() == "404"
        assert "unknown model 'nope'; this server serves 'squeezenet'" in e.value.message()
        c.close()


def test_json_and_binary_inference_match_onnxruntime(squeezenet):
    model, session = squeezenet
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (ref,) = ort_run(model, {"input": x})
    with serving(session, "squeezenet") as srv:
        c = client(srv)
        # tritonclient's default: binary inputs, and binary outputs for every output
        binary = c.infer("squeezenet", [infer_input("input", x)], request_id="b1")
        assert binary.get_response()["id"] == "b1"
        assert binary.get_response()["outputs"][0]["parameters"]["binary_data_size"] == ref.nbytes
        as_json = c.infer("squeezenet", [infer_input("input", x, binary=False)],
                          outputs=[triton.InferRequestedOutput("logits", binary_data=False)])
        assert "data" in as_json.get_response()["outputs"][0]
        compressed = c.infer("squeezenet", [infer_input("input", x)], model_version="1",
                             request_compression_algorithm="gzip", response_compression_algorithm="deflate")
        c.close()
    for result in (binary, as_json, compressed):
        y = result.as_numpy("logits")
        assert y.dtype == np.float32 and y.shape == (2, 1000)
        assert_matches_range(y, ref, rel=1e-4)
    # the same model run on the same bytes: the encodings must not change a single bit
    np.testing.assert_array_equal(binary.as_numpy("logits"), as_json.as_numpy("logits"))
    np.testing.assert_array_equal(binary.as_numpy("logits"), compressed.as_numpy("logits"))


def test_user_mistakes_are_400_with_a_message_naming_the_field(add_relu_session):
    x = np.ones((1, 4), np.float32)
    cases = [
        ([infer_input("z", x)], None, "unknown input 'z'; the model's inputs are: x (FP32 [-1, 4])"),
        ([infer_input("x", np.ones((1, 3), np.float32))], None, "input 'x' has shape (1, 3); axis 1 must be 4"),
        ([infer_input("x", x.astype(np.float64))], None,
         "input 'x': datatype FP64 does not match the model, which expects FP32"),
        ([infer_input("x", x), infer_input("x", x)], None, "input 'x' is given twice"),
        ([infer_input("x", x)], [triton.InferRequestedOutput("q")], "unknown output 'q'"),
    ]
    with serving(add_relu_session) as srv:
        c = client(srv)
        for inputs, outputs, message in cases:
            with pytest.raises(InferenceServerException) as e:
                c.infer("m", inputs, outputs=outputs)
            assert e.value.status() == "400" and message in e.value.message(), e.value.message()
        # the connection and the server are fine afterwards
        np.testing.assert_array_equal(c.infer("m", [infer_input("x", x)]).as_numpy("y"), expected_add_relu(x))
        c.close()

        status, _, body = raw_request(srv, "POST", "/v2/models/m/infer", b'{"inputs": [')
        assert status == 400 and json.loads(body)["error"].startswith("malformed request JSON")
        status, _, body = raw_request(srv, "POST", "/v2/models/m/infer", b"{}", {"Content-Encoding": "br"})
        assert status == 415 and "Content-Encoding 'br'" in json.loads(body)["error"]
        status, _, body = raw_request(srv, "POST", "/v2/models/m/infer", b'{"inputs": []}',
                                      {"Inference-Header-Content-Length": "x"})
        assert status == 400
        assert "Inference-Header-Content-Length header 'x' is not an integer" in json.loads(body)["error"]
        m = metrics(srv)
    assert not [k for k in m if k[0] == "claw_http_requests_total" and ("code", "500") in k[1]]
    assert sample(m, "claw_inferences_total", model="m", outcome="invalid_input") == 1  # the shape, found in run


def test_unknown_model_version_and_endpoint_are_404(add_relu_session):
    x = np.ones((1, 4), np.float32)
    with serving(add_relu_session) as srv:
        c = client(srv)
        with pytest.raises(InferenceServerException) as e:
            c.infer("nope", [infer_input("x", x)])
        assert e.value.status() == "404" and "unknown model 'nope'" in e.value.message()
        with pytest.raises(InferenceServerException) as e:
            c.infer("m", [infer_input("x", x)], model_version="2")
        assert e.value.status() == "404" and "has no version '2'" in e.value.message()
        c.close()
        status, _, body = raw_request(srv, "GET", "/v3/anything")
        assert status == 404 and "no endpoint GET /v3/anything" in json.loads(body)["error"]
        status, headers, body = raw_request(srv, "GET", "/v2/models/m/infer")
        assert status == 405 and headers["Allow"] == "POST" and "error" in json.loads(body)
        status, _, body = raw_request(srv, "PUT", "/v2")
        assert status == 501 and "Unsupported method ('PUT')" in json.loads(body)["error"]


# -- concurrency -------------------------------------------------------------------------------------------------
def test_full_queue_answers_503_at_once(add_relu_session):
    gated = GatedSession(add_relu_session)
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    with serving(gated, queue_size=1, workers=1) as srv:
        results: dict[int, np.ndarray] = {}

        def send(k: int) -> None:
            c = client(srv)
            results[k] = c.infer("m", [infer_input("x", x + k)]).as_numpy("y")
            c.close()

        runner = srv.service.runner
        first = threading.Thread(target=send, args=(0,))
        first.start()
        wait_until(lambda: runner.busy == 1, what="the first request in the worker")
        second = threading.Thread(target=send, args=(1,))
        second.start()
        wait_until(lambda: runner.depth == 1, what="the second request in the queue")

        c = client(srv)
        t0 = time.monotonic()
        with pytest.raises(InferenceServerException) as e:
            c.infer("m", [infer_input("x", x)])
        assert time.monotonic() - t0 < 5.0, "a full queue answers at once, without waiting for room"
        assert e.value.status() == "503" and "the queue is full" in e.value.message()
        assert runner.depth == 1 and runner.busy == 1  # the rejected request took no place
        c.close()

        gated.gate.set()
        first.join(30)
        second.join(30)
    for k in (0, 1):
        np.testing.assert_array_equal(results[k], expected_add_relu(x + k))


def test_workers_sharing_one_loaded_model_give_each_request_its_own_answer(squeezenet):
    """--workers N runs one Session from N threads at once: a real conv net (kernels with scratch buffers),
    distinct inputs, every answer checked against onnxruntime, so shared state between runs would show."""
    model, loaded = squeezenet

    class Overlap:  # the session, counting how many runs are in progress at once
        inputs, outputs = loaded.inputs, loaded.outputs
        now = most = 0
        lock = threading.Lock()

        def run(self, feeds):
            with self.lock:
                self.now += 1
                Overlap.most = max(Overlap.most, self.now)
            try:
                return loaded.run(feeds)
            finally:
                with self.lock:
                    self.now -= 1
    session = Overlap()
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(12)]
    refs = [ort_run(model, {"input": x})[0] for x in xs]
    got: dict[int, np.ndarray] = {}
    errors: list[str] = []
    with serving(session, "squeezenet", workers=3, queue_size=len(xs)) as srv:
        def work(k: int) -> None:
            c = client(srv)
            try:
                for i in range(k, len(xs), 4):
                    got[i] = c.infer("squeezenet", [infer_input("input", xs[i])]).as_numpy("logits")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"client {k}: {type(e).__name__}: {e}")
            finally:
                c.close()
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    assert Overlap.most >= 2, "the runs never overlapped: the test proved nothing about sharing"
    for i, ref in enumerate(refs):
        assert_matches_range(got[i], ref)


def test_concurrent_clients_all_answered_correctly(add_relu_session):
    """32 clients, 2016 requests, each with its own data, half JSON and half binary, batch 1 to 3: every answer
    is the one for its own request (a mixed-up response would not match) and none is lost. A queue of 32
    holds every client's request at once, so there is no 503 either."""
    n_clients, per_client = 32, 63
    answered = np.zeros((n_clients, per_client), dtype=bool)
    errors: list[str] = []
    with serving(add_relu_session, queue_size=n_clients) as srv:
        def work(k: int) -> None:
            c = client(srv)
            try:
                for i in range(per_client):
                    batch = 1 + (k + i) % 3
                    # distinct per request and exact in float32: 1000 * client + request + 1/8 steps
                    x = (1000.0 * k + i + 0.125 * np.arange(batch * 4, dtype=np.float32)).reshape(batch, 4)
                    binary = (k + i) % 2 == 0
                    r = c.infer("m", [infer_input("x", x, binary)], request_id=f"{k}-{i}",
                                outputs=[triton.InferRequestedOutput("y", binary_data=binary)])
                    assert r.get_response()["id"] == f"{k}-{i}"
                    np.testing.assert_array_equal(r.as_numpy("y"), expected_add_relu(x))
                    answered[k, i] = True
            except Exception as e:  # noqa: BLE001 - collected and reported by the test thread
                errors.append(f"client {k}: {type(e).__name__}: {e}")
            finally:
                c.close()

        threads = [threading.Thread(target=work, args=(k,)) for k in range(n_clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - t0
        m = metrics(srv)
    assert not errors, errors[:5]
    assert answered.all()
    total = n_clients * per_client
    assert sample(m, "claw_http_requests_total", endpoint="infer", code="200") == total
    assert sample(m, "claw_inferences_total", model="m", outcome="success") == total
    assert sample(m, "claw_request_duration_seconds_count", model="m") == total
    assert sample(m, "claw_queue_depth", model="m") == 0
    print(f"{total} requests from {n_clients} clients in {elapsed:.1f} s ({total / elapsed:.0f}/s)")


def test_connections_beyond_the_limit_are_refused_and_idle_ones_do_not_delay_stop(add_relu_session):
    with serving(add_relu_session, max_connections=2) as srv:
        idle = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(2)]
        wait_until(lambda: len(srv._httpd._connections) == 2, what="two connections accepted")
        extra = socket.create_connection((srv.host, srv.port), timeout=10)
        reply = extra.recv(4096)
        assert reply.startswith(b"HTTP/1.1 503") and b"too many connections" in reply
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5.0, "stop() does not wait for idle keep-alive connections"
    for s in [*idle, extra]:
        s.close()


# -- metrics and logs ----------------------------------------------------------------------------------------------
def test_metrics_count_what_was_sent_and_logs_are_json_lines(add_relu_session):
    x = np.ones((2, 4), np.float32)
    with serving(add_relu_session) as srv:
        c = client(srv)
        for _ in range(3):
            c.infer("m", [infer_input("x", x)])
        for _ in range(2):
            with pytest.raises(InferenceServerException):
                c.infer("m", [infer_input("x", x.astype(np.float64))])
        with pytest.raises(InferenceServerException):
            c.infer("other", [infer_input("x", x)])
        c.get_model_metadata("m")
        c.close()
        m = metrics(srv)
    log = srv.log_text()
    assert sample(m, "claw_http_requests_total", endpoint="infer", code="200") == 3
    assert sample(m, "claw_http_requests_total", endpoint="infer", code="400") == 2
    assert sample(m, "claw_http_requests_total", endpoint="infer", code="404") == 1
    assert sample(m, "claw_http_requests_total", endpoint="model_metadata", code="200") == 1
    assert sample(m, "claw_inferences_total", model="m", outcome="success") == 3
    assert sample(m, "claw_inferences_total", model="m", outcome="error") == 0
    assert sample(m, "claw_request_duration_seconds_count", model="m") == 3
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                     if k[0] == "claw_request_duration_seconds_bucket")
    assert buckets[-1] == (float("inf"), 3) and all(a[1] <= b[1] for a, b in itertools.pairwise(buckets))
    assert sample(m, "claw_queue_depth", model="m") == 0 and sample(m, "claw_queue_capacity", model="m") == 16

    records = [json.loads(line) for line in log.splitlines()]
    assert records[0]["event"] == "start" and records[0]["port"] == srv.port and records[-1]["event"] == "stop"
    requests = [r for r in records if r["event"] == "request"]
    assert len(requests) == 8  # the 7 above and the /metrics scrape
    assert all({"ts", "method", "path", "status", "duration_ms", "model"} <= r.keys() for r in requests)
    assert [r["status"] for r in requests] == [200, 200, 200, 400, 400, 404, 200, 200]
    assert requests[0]["model"] == "m" and requests[0]["path"] == "/v2/models/m/infer"
    assert requests[5]["model"] == "other" and "unknown model" in requests[5]["error"]


# -- processes: the CLI, and SIGTERM while a request is in flight -------------------------------------------------
GATED_SERVER = textwrap.dedent("""
    import os, sys, time
    import clawdbot
    from clawdbot.serve.server import InferenceServer, run_until_signalled

    model, gate = sys.argv[1], sys.argv[2]
    session = clawdbot.load(model)

    class GatedSession:  # run() waits until the test creates the gate file
        inputs, outputs = session.inputs, session.outputs

        def run(self, feeds):
            while not os.path.exists(gate):
                time.sleep(0.005)
            return session.run(feeds)

    sys.exit(run_until_signalled(InferenceServer(GatedSession(), "m", port=0, log=sys.stderr)))
""")


def test_sigterm_finishes_the_request_in_flight_then_exits_0(tmp_path):
    onnx.save(add_relu(), str(tmp_path / "m.onnx"))
    (tmp_path / "server.py").write_text(GATED_SERVER)
    gate, log_path = tmp_path / "gate", tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(tmp_path / "server.py"), str(tmp_path / "m.onnx"), str(gate)],
                                stderr=log, stdout=subprocess.DEVNULL)
    try:
        port = start_line(log_path, proc)["port"]
        url = f"127.0.0.1:{port}"
        x = np.full((1, 4), 5.0, np.float32)
        result: dict[str, object] = {}

        def send() -> None:
            c = triton.InferenceServerClient(url, connection_timeout=30, network_timeout=30)
            try:
                result["y"] = c.infer("m", [infer_input("x", x)]).as_numpy("y")
            except Exception as e:  # noqa: BLE001 - checked below
                result["error"] = e
            c.close()

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: sample(metrics(f"http://{url}"), "claw_inferences_running", model="m") == 1,
                   what="the request to reach the worker")
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: any(r["event"] == "stopping" for r in log_records(log_path)), what="the stopping line")

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:  # accepted into the backlog just before the socket closed
                return False
        wait_until(refused, what="the listening socket to close")
        assert proc.poll() is None and sender.is_alive(), "the request in flight is still being served"

        gate.touch()
        sender.join(30)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "error" not in result, result.get("error")
    np.testing.assert_array_equal(result["y"], expected_add_relu(x))
    records = [r for r in log_records(log_path) if r.get("path") != "/metrics"]  # the test's polls
    assert [r["event"] for r in records] == ["start", "stopping", "request", "stop"]
    # At least the inference: the metrics poll that saw it running may not have left its handler yet (the
    # client has its answer before the server's bookkeeping runs), so 2 is a correct count too.
    assert records[1]["signal"] == "SIGTERM" and records[1]["in_flight"] >= 1
    assert records[2]["path"] == "/v2/models/m/infer" and records[2]["status"] == 200
    assert records[3]["drained"] is True


def test_claw_serve_command(tmp_path):
    claw = tmp_path / "tiny.claw"
    assert main(["convert", str(_save(tmp_path, add_relu())), "-o", str(claw)]) == 0
    log_path = tmp_path / "serve.log"
    with claw_serve([str(claw), "--host", "127.0.0.1", "--port", "0", "--queue", "4", "--workers", "2"],
                    log_path) as (proc, start):
        assert start["model"] == "tiny" and start["queue"] == 4 and start["workers"] == 2
        c = triton.InferenceServerClient(f"127.0.0.1:{start['port']}", connection_timeout=30, network_timeout=30)
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        np.testing.assert_array_equal(c.infer("tiny", [infer_input("x", x)]).as_numpy("y"), expected_add_relu(x))
        c.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    events = [r["event"] for r in log_records(log_path)]
    assert events == ["start", "request", "stopping", "stop"]


def _save(tmp_path: Path, model: onnx.ModelProto) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_claw_serve_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claw: error:") and "no such file" in err
    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path / "m.onnx"), "--queue", "0"])
    assert e.value.code == 2 and "--queue: must be at least 1, got 0" in capsys.readouterr().err
    # a port already taken: the one line names it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(_save(tmp_path, add_relu())), "--host", "127.0.0.1", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_server_needs_only_numpy_and_the_stdlib():
    # the board installs no HTTP framework: the Triton client is for tests and users, never the server
    src = Path(clawdbot.__file__).parent / "serve"
    imports = {line.split()[1].split(".")[0] for f in src.glob("*.py") for line in f.read_text().splitlines()
               if line.startswith(("import ", "from ")) and not line.startswith("from .")}
    assert imports - set(sys.stdlib_module_names) == {"numpy"}, imports
