"""Request limits: body size (413 before reading past it, chunked too), slow bodies and slow headers
(cut off, others still served), nesting depth for JSON and YAML (422 naming the limit), strict
numbers, bounded metric names and counts, and 422 bodies that echo no more than a short excerpt."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from tuneserve_service.config import Settings
from tests.helpers import claim, make_study, study_body
from tests.support.live_server import LiveServer

API = "/api/v1"
DEPTH = Settings().max_json_depth


def nested(depth: int) -> object:
    doc: object = 1.0
    for _ in range(depth):
        doc = [doc]
    return doc


def raw_json(client, path: str, text: str | bytes):
    return client.post(API + path, content=text, headers={"content-type": "application/json"})


# ---- in-process: decoding rules ------------------------------------------------------------------

@pytest.mark.parametrize("depth", [DEPTH + 1, 5_000, 200_000])
def test_deep_json_is_422_naming_the_limit_on_any_route(client, depth):
    make_study(client)
    deep = "[" * depth + "]" * depth
    for path, body in [("/trials/claim", '{"worker_id": "w", "study": %s}' % deep),
                       ("/studies", '{"name": "d", "parameters": {"a": {"values": %s}}}' % deep),
                       ("/studies/s/enqueue", '{"params": {"lr": %s}}' % deep)]:
        r = raw_json(client, path, body)
        assert r.status_code == 422, (path, r.text[:300])
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body"] and f"{DEPTH} levels" in err["msg"] and err["ctx"] == {"max_depth": DEPTH}
    assert client.get(f"{API}/studies/s").json()["counts"]["total"] == 0


def test_json_at_the_limit_and_brackets_in_strings_are_fine(client):
    make_study(client)
    # Brackets inside strings do not count; nesting up to the limit reaches validation as usual.
    r = raw_json(client, "/trials/claim", json.dumps({"worker_id": "[" * 500, "study": "s"}))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "worker_id"]  # too long, not too deep
    r = raw_json(client, "/studies/s/enqueue", json.dumps({"params": {"lr": nested(DEPTH - 3)}}))
    assert r.status_code == 422 and "levels" not in r.text


@pytest.mark.parametrize("doc", [
    "name: y\nparameters:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(DEPTH + 5)) + "  " * (DEPTH + 6) + "v: 1\n",
    "name: y\nparameters: " + "[" * 3000 + "]" * 3000 + "\n",
    "name: y\nparameters: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
])
def test_deep_yaml_is_422_naming_the_limit(client, doc):
    r = client.post(f"{API}/studies", content=doc, headers={"content-type": "application/yaml"})
    assert r.status_code == 422, r.text[:300]
    assert f"{DEPTH} levels" in r.json()["detail"][0]["msg"]
    assert client.get(f"{API}/studies").json() == []


def test_yaml_alias_bomb_is_refused(client):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    doc = "\n".join(lines) + "\nname: bomb\nparameters: {lr: {values: *a8}}\n"
    r = client.post(f"{API}/studies", content=doc, headers={"content-type": "application/yaml"})
    assert r.status_code == 422 and "expands to more than" in r.json()["detail"][0]["msg"]


def test_yaml_reads_exponent_floats_as_numbers(client):
    doc = ("name: y\nmethod: random\nmax_trials: 3\nlease_seconds: 1e2\n"
           "parameters:\n  lr: {distribution: log_uniform_values, min: 1e-5, max: 1E-1}\n")
    r = client.post(f"{API}/studies", content=doc, headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.json()["lease_seconds"] == 100.0


@pytest.mark.parametrize("field,value,loc", [
    ("value", "NaN", ["body", "value"]),
    ("value", "1e309", ["body", "value"]),
    ("value", True, ["body", "value"]),
    ("metrics", {"val_loss": "NaN"}, ["body", "metrics", "val_loss"]),
    ("metrics", {"val_loss": "1e309"}, ["body", "metrics", "val_loss"]),
    ("metrics", {"val_loss": False}, ["body", "metrics", "val_loss"]),
])
def test_strings_and_booleans_are_not_numbers(client, field, value, loc):
    make_study(client)
    lease = claim(client)
    body = {"lease_token": lease["lease_token"], "value": 1.0, field: value}
    r = raw_json(client, f"/trials/{lease['trial_id']}/complete", json.dumps(body))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == loc and r.json()["detail"][0]["type"] == "float_type"
    assert client.get(f"{API}/trials/{lease['trial_id']}").json()["state"] == "running"


@pytest.mark.parametrize("step", ["1", True, 1.0, 1.5])
def test_steps_are_integers(client, step):
    make_study(client)
    lease = claim(client)
    r = raw_json(client, f"/trials/{lease['trial_id']}/report",
                 json.dumps({"lease_token": lease["lease_token"], "step": step, "metrics": {"val_loss": 1.0}}))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "step"]


@pytest.mark.parametrize("overrides,loc", [
    ({"max_trials": "10"}, ["body", "max_trials"]),
    ({"max_trials": True}, ["body", "max_trials"]),
    ({"seed": "7"}, ["body", "seed"]),
    ({"lease_seconds": "NaN"}, ["body", "lease_seconds"]),
    ({"max_concurrent": 2.0}, ["body", "max_concurrent"]),
])
def test_study_numbers_are_strict(client, overrides, loc):
    r = client.post(f"{API}/studies", json=study_body("n", **overrides))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc
    r = raw_json(client, "/studies", '{"name": "n", "lease_seconds": NaN, "parameters": {"a": {"value": 1}}}')
    assert r.status_code == 422 and "NaN" in r.json()["detail"][0]["msg"]


def test_json_nan_tokens_in_metrics_still_mean_divergence(client):
    make_study(client)
    lease = claim(client)
    r = raw_json(client, f"/trials/{lease['trial_id']}/report",
                 '{"lease_token": "%s", "step": 1, "metrics": {"val_loss": NaN}}' % lease["lease_token"])
    assert r.status_code == 200 and r.json()["should_stop"] is True
    assert client.get(f"{API}/trials/{lease['trial_id']}").json()["state"] == "diverged"


def test_metric_names_and_counts_are_bounded(client):
    make_study(client)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    long_name = {"x" * 129: 1.0}
    too_many = {f"m{i}": 1.0 for i in range(201)}
    control = {"val\nloss": 1.0}
    for metrics in (long_name, too_many, control):
        r = raw_json(client, f"/trials/{tid}/report", json.dumps({"lease_token": tok, "step": 1, "metrics": metrics}))
        assert r.status_code == 422, r.text[:200]
    ok = {"x" * 128: 1.0, **{f"m{i}": 1.0 for i in range(199)}}
    assert raw_json(client, f"/trials/{tid}/report",
                    json.dumps({"lease_token": tok, "step": 1, "metrics": ok})).status_code == 200
    assert client.get(f"{API}/trials/{tid}").json()["reports"][0]["metrics"] == ok


def test_422_echoes_a_short_excerpt_and_never_a_token(client):
    make_study(client)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    secret = "tsv_" + "S" * 40
    bodies = [
        {"lease_token": tok, "step": 1, "metrics": {"val_loss": "A" * 100_000}},
        {"lease_token": tok, "step": 1, "metrics": {secret + "B" * 100_000: 1.0}},
        {"lease_token": 12345, "step": 1, "metrics": {}},
        {"lease_token": secret * 3, "step": 1, "metrics": {}},
        {"lease_token": tok, "metrics": {"val_loss": 1.0}, "secret_field": secret},
    ]
    for body in bodies:
        r = raw_json(client, f"/trials/{tid}/report", json.dumps(body))
        assert r.status_code == 422
        assert len(r.content) < 2_000, len(r.content)
        assert tok not in r.text and secret not in r.text and "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" not in r.text
    r = raw_json(client, f"/trials/{tid}/report", json.dumps(bodies[0]))
    assert r.json()["detail"][0]["input"].startswith("A" * 40) and "100000 chars" in r.json()["detail"][0]["input"]


def test_a_body_over_the_limit_is_413(client):
    make_study(client)
    limit = Settings().max_body_bytes
    big = json.dumps({"params": {"lr": 0.1, "pad": "x" * limit}})
    r = raw_json(client, "/studies/s/enqueue", big)
    assert r.status_code == 413 and str(limit) in r.json()["detail"]

    def chunks():  # no Content-Length: a chunked upload
        for _ in range(limit // 16_384 + 4):
            yield b"x" * 16_384

    r = client.post(f"{API}/studies/s/enqueue", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get(f"{API}/studies/s").json()["counts"]["total"] == 0


# ---- a real server: slow and oversized clients ------------------------------------------------

LIMITS = {"TUNESERVE_BODY_TIMEOUT": "2", "TUNESERVE_HEADER_TIMEOUT": "2", "TUNESERVE_MAX_BODY_BYTES": "65536"}


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    server = LiveServer(f"sqlite:///{tmp / 'limits.db'}", env=LIMITS, log_path=tmp / "server.log")
    server.start()
    yield server
    server.stop()


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return sock


def _read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


class HealthProbe:
    """GET /healthz in a loop while a slow client is connected: the worst latency seen."""

    def __init__(self, url: str):
        self.url, self.worst, self.errors, self.count = url, 0.0, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with httpx.Client(timeout=10) as c:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    assert c.get(self.url + "/healthz").status_code == 200
                except Exception as err:  # noqa: BLE001 - recorded and asserted on
                    self.errors.append(repr(err))
                self.worst = max(self.worst, time.monotonic() - t0)
                self.count += 1
                self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)


def _trickle(sock: socket.socket, payload: bytes, every: float, stop_at: float) -> None:
    for byte in payload:
        if time.monotonic() > stop_at:
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return  # the server hung up: what we are waiting for
        time.sleep(every)


def test_slow_body_is_cut_off_while_others_are_served(limited_server):
    with HealthProbe(limited_server.url) as probe, _connect(limited_server) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /api/v1/trials/claim HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 200\r\n\r\n{")
        sender = threading.Thread(target=_trickle, args=(sock, b" " * 199, 0.3, t0 + 20), daemon=True)
        sender.start()
        answer = _read_until_closed(sock, t0 + 20)
        elapsed = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 1.5 < elapsed < 10, elapsed
    assert probe.errors == [] and probe.count > 5 and probe.worst < 2.0, (probe.worst, probe.errors)


def test_slow_headers_are_cut_off_while_others_are_served(limited_server):
    with HealthProbe(limited_server.url) as probe, _connect(limited_server) as sock:
        t0 = time.monotonic()
        sender = threading.Thread(target=_trickle, args=(sock, b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: "
                                                         + b"a" * 100, 0.3, t0 + 20), daemon=True)
        sender.start()
        answer = _read_until_closed(sock, t0 + 20)
        elapsed = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 1.5 < elapsed < 10, elapsed
    assert probe.errors == [] and probe.count > 5 and probe.worst < 2.0, (probe.worst, probe.errors)


def test_headers_past_16_kib_are_431_and_the_connection_closed(limited_server):
    """httptools buffers a header value of any length: the protocol bounds it (service/serving.py),
    also when it arrives fast and in one piece."""
    with _connect(limited_server) as sock:
        t0 = time.monotonic()
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (1 << 20))
        except OSError:
            pass  # the server hung up mid-send: the answer is still in the receive buffer
        answer = _read_until_closed(sock, t0 + 10)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"16384 bytes" in answer
    assert httpx.get(limited_server.url + "/healthz", timeout=5).status_code == 200  # the server is fine


def test_headers_just_under_the_bound_are_served(limited_server):
    with _connect(limited_server) as sock:
        t0 = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: "
                     + b"a" * 15000 + b"\r\n\r\n")
        answer = _read_until_closed(sock, t0 + 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_a_declared_huge_body_is_refused_before_it_is_sent(limited_server):
    with _connect(limited_server) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /api/v1/trials/claim HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 50000000\r\n\r\n")
        answer = _read_until_closed(sock, t0 + 10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - t0 < 5


def test_a_chunked_body_is_cut_at_the_limit(limited_server):
    with _connect(limited_server) as sock:
        sock.sendall(b"POST /api/v1/trials/claim HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        sent = 0
        sock.settimeout(0.05)
        answer = b""
        while sent < 10_000_000:
            try:
                sock.sendall(b"4000\r\n" + b" " * 0x4000 + b"\r\n")
            except OSError:
                break
            sent += 0x4000
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        answer += _read_until_closed(sock, time.monotonic() + 5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 2_000_000, sent  # refused early, not after reading everything
    with httpx.Client() as c:  # the server is fine afterwards
        assert c.get(limited_server.url + "/healthz").status_code == 200
