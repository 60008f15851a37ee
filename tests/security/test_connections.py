"""Attacks on the connection itself: a request head that never ends (slow-loris), a
header larger than the limit, bytes that are not text where text is read. Each gets
a bounded, clean answer — a closed connection or an OpenAI-shaped error — and the
server's log gets one line without the attacker's bytes, never a traceback."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from conftest import HEADER_TIMEOUT
from gateway_support import GatewayProcess, Keys, bearer

# Far beyond HEADER_TIMEOUT, so a server that enforces it is never this slow.
PATIENCE = HEADER_TIMEOUT * 15


def _connect(gateway: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=PATIENCE)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; raises TimeoutError if it keeps
    the connection open past PATIENCE."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return status, headers, body


def test_a_request_head_that_never_ends_is_cut_off(gateway: GatewayProcess) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        started = time.monotonic()
        received = _read_until_closed(sock)
    assert time.monotonic() - started < PATIENCE
    if received:
        status, _, _ = _response(received)
        assert status in (400, 408)


def test_dribbling_a_head_byte_by_byte_does_not_extend_it(gateway: GatewayProcess) -> None:
    head = b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\n" + b"X-Pad: " + b"a" * 400
    with _connect(gateway) as sock:
        started = time.monotonic()
        closed = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(HEADER_TIMEOUT / 20)
            if time.monotonic() - started > PATIENCE:
                break
        if not closed:
            sock.settimeout(PATIENCE)
            _read_until_closed(sock)
    assert time.monotonic() - started < PATIENCE


def test_an_idle_keep_alive_connection_still_serves_the_next_request(
    gateway: GatewayProcess, keys: Keys
) -> None:
    """The limit is on an unfinished head, not on a client thinking between requests."""
    with httpx.Client(base_url=gateway.url, headers=bearer(keys.admin), timeout=10) as client:
        assert client.get("/v1/models").status_code == 200
        time.sleep(HEADER_TIMEOUT * 1.5)
        assert client.get("/v1/models").status_code == 200


def test_an_oversized_header_gets_an_error_object_and_a_quiet_log(
    gateway: GatewayProcess,
) -> None:
    marker = "attacker-" + "z" * 20_000
    with _connect(gateway) as sock:
        sock.sendall(
            b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nX-Big: " + marker.encode() + b"\r\n\r\n"
        )
        status, headers, body = _response(_read_until_closed(sock))
    assert status in (400, 431)
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    logs = gateway.logs()
    assert "attacker-" not in logs
    assert "Traceback" not in logs


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/api/v1/agents/support/generate", {"prompt": "Where is order 42?"}),
        ("/api/v1/agents/support/stream", {"prompt": "Where is order 42?"}),
    ],
)
def test_bytes_that_are_not_utf8_in_a_context_header_are_a_named_400(
    gateway: GatewayProcess, keys: Keys, path: str, payload: dict[str, object]
) -> None:
    body = json.dumps(payload).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n".encode()
        + f"Authorization: Bearer {keys.admin}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + b"x-bastion-context-tier: \xff\xfe\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with _connect(gateway) as sock:
        sock.sendall(request)
        status, _, answer = _response(_read_until_closed(sock))
    assert status == 400
    error = json.loads(answer)["error"]
    assert "x-bastion-context-tier" in (error.get("param") or "") + error["message"]
    assert "Traceback" not in gateway.logs()
