"""The HTTP connection under `bastion serve`, over real sockets: a request head that
does not arrive in time closes its connection (slow-loris), a head the parser refuses
is answered in OpenAI's shape and logged as one line quoting none of it, and the access
log keeps no query value."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_support import QUESTION, GatewayProcess, Keys, MakeGateway, gateway_config, wait_for

HEAD_TIMEOUT = 0.5
# Far longer than HEAD_TIMEOUT: how long a test waits for the server to act.
PATIENCE = 10.0


@pytest.fixture
def server(make_gateway: MakeGateway, fleet: Any) -> GatewayProcess:
    config = gateway_config(fleet, server={"header_timeout": HEAD_TIMEOUT, "log_requests": True})
    return make_gateway(config)


@pytest.fixture
def conn(server: GatewayProcess) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as sock:
        yield sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (head and a Content-Length body) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (EOF or reset) before PATIENCE ran out."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def error_of(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected, body
    assert headers["content-type"].startswith("application/json")
    document = json.loads(body)
    assert set(document) == {"error"}
    assert {"message", "type", "param", "code"} <= set(document["error"])
    error: dict[str, Any] = document["error"]
    return error


def get(path: str, key: str, **headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: bastion", f"Authorization: Bearer {key}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- request heads that do not arrive in time ------------------------------------------


def test_a_first_head_never_finished_is_closed(conn: socket.socket, server: GatewayProcess) -> None:
    conn.sendall(b"GET /v1/models HTTP/1.1\r\nHost: bastion\r\nX-Slow: ")
    error = error_of(*read_response(conn), 408)
    assert error["code"] == "request_timeout"
    assert closed(conn)
    assert wait_for(lambda: "request head not complete in time" in server.logs())


def test_a_connection_that_sends_nothing_is_closed(conn: socket.socket) -> None:
    assert error_of(*read_response(conn), 408)["code"] == "request_timeout"
    assert closed(conn)


def test_a_head_dribbled_a_byte_at_a_time_is_cut_off(conn: socket.socket) -> None:
    head = b"GET /v1/models HTTP/1.1\r\nHost: bastion\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    sent = 0
    with pytest.raises(OSError):
        for sent in range(len(head)):
            conn.sendall(head[sent : sent + 1])
            time.sleep(HEAD_TIMEOUT / 5)
    # Cut well before the whole head went: each byte's arrival did not restart the clock.
    assert sent < len(head) - 1


def test_the_next_head_on_a_kept_alive_connection_has_the_same_limit(
    conn: socket.socket, keys: Keys
) -> None:
    conn.sendall(get("/v1/models", keys.app))
    status, _, _ = read_response(conn)
    assert status == 200
    conn.sendall(b"GET /v1/models HTTP/1.1\r\nHost: bas")
    assert error_of(*read_response(conn), 408)["code"] == "request_timeout"
    assert closed(conn)


def test_an_idle_kept_alive_connection_is_not_cut_by_the_head_limit(
    conn: socket.socket, keys: Keys
) -> None:
    conn.sendall(get("/v1/models", keys.app))
    assert read_response(conn)[0] == 200
    time.sleep(HEAD_TIMEOUT * 3)  # idle: no head has begun
    conn.sendall(get("/v1/models", keys.app))
    assert read_response(conn)[0] == 200


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    make_gateway: MakeGateway, fleet: Any, keys: Keys
) -> None:
    """Idle sockets are not free: one request each must not hold a connection for the
    hour aiohttp would allow."""
    config = gateway_config(fleet, server={"keepalive_timeout": HEAD_TIMEOUT})
    server = make_gateway(config)
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as sock:
        sock.sendall(get("/v1/models", keys.app))
        assert read_response(sock)[0] == 200
        assert closed(sock)


def test_a_slow_body_is_not_cut_by_the_head_limit(conn: socket.socket, keys: Keys) -> None:
    body = json.dumps({"model": "chat", "messages": QUESTION}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bastion\r\n"
        f"Authorization: Bearer {keys.app}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    conn.sendall(head.encode())
    half = len(body) // 2
    conn.sendall(body[:half])
    time.sleep(HEAD_TIMEOUT * 3)
    conn.sendall(body[half:])
    assert read_response(conn)[0] == 200


# --- heads the parser refuses ----------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: b\r\nX-Secret: %s\r\n\r\n", 431, "header_too_large"),
        (b"GET /v1/models?q=%s HTTP/1.1\r\nHost: b\r\n\r\n", 431, "header_too_large"),
        (b"G@T /v1/models?q=%s HTTP/1.1\r\nHost: b\r\n\r\n", 400, "invalid_method"),
        (b"GET /v1/mo\x01dels?q=%s HTTP/1.1\r\nHost: b\r\n\r\n", 400, "invalid_url"),
        (b"GET /v1/models?q=%s HTTP/9.1\r\nHost: b\r\n\r\n", 400, "invalid_request_line"),
        (b"GET /v1/models HTTP/1.1\r\nHost: b\r\nBad Name: %s\r\n\r\n", 400, "invalid_request"),
    ],
    ids=["long-header", "long-line", "bad-method", "bad-target", "bad-version", "bad-name"],
)
def test_a_refused_head_is_an_openai_error_and_one_log_line(
    conn: socket.socket, server: GatewayProcess, head: bytes, status: int, code: str
) -> None:
    secret = secrets.token_hex(8)
    filler = secret * (9000 // len(secret)) if status == 431 else secret
    conn.sendall(head % filler.encode())
    error = error_of(*read_response(conn), status)
    assert error["code"] == code
    assert secret not in error["message"]
    if status == 431:
        assert "8190" in error["message"]
    assert wait_for(lambda: "malformed request refused" in server.logs())
    logs = server.logs()
    assert logs.count("malformed request refused") == 1
    assert "UNKNOWN" not in logs  # no access line for it beside the one line
    assert "Traceback" not in logs
    assert secret not in logs


# --- the access log --------------------------------------------------------------------


def test_the_access_log_keeps_no_query_value(
    conn: socket.socket, server: GatewayProcess, keys: Keys
) -> None:
    secret = secrets.token_hex(12)
    conn.sendall(get(f"/v1/models?key={secret}&{secret}&model=chat", keys.app))
    assert read_response(conn)[0] == 200
    line = '"GET /v1/models?key=***&***&model=*** HTTP/1.1" 200'
    assert wait_for(lambda: line in server.logs()), server.logs()
    assert secret not in server.logs()


def test_a_body_that_cannot_be_decoded_is_a_400_without_a_traceback(
    conn: socket.socket, server: GatewayProcess, keys: Keys
) -> None:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bastion\r\n"
        f"Authorization: Bearer {keys.app}\r\nContent-Type: application/json\r\n"
        "Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n"
    )
    conn.sendall(head.encode() + b"0123456789")
    error = error_of(*read_response(conn), 400)
    assert (error["code"], error["param"]) == ("invalid_body", "body")
    assert wait_for(lambda: "request body unreadable" in server.logs())
    assert "Traceback" not in server.logs()
