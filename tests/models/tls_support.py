"""A private CA (trustme) with a client certificate, and an https upstream that requires
one and says whose it saw."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web


def completion(text: str) -> dict[str, Any]:
    """An OpenAI chat completion answering `text`."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


class Files:
    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = str(directory / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        client = self.ca.issue_cert("bastion-client@example.com")
        self.cert_file = str(directory / "client.pem")
        self.key_file = str(directory / "client.key")
        self.both_file = str(directory / "client-and-key.pem")
        client.cert_chain_pems[0].write_to_path(self.cert_file)
        client.private_key_pem.write_to_path(self.key_file)
        client.private_key_and_cert_chain_pem.write_to_path(self.both_file)


class MutualUpstream:
    """Answers every request with a chat completion whose text is the client
    certificate's subjectAltName, as it verified it."""

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, files: Files) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        files.ca.issue_cert("127.0.0.1").configure_cert(context)
        context.verify_mode = ssl.CERT_REQUIRED
        files.ca.configure_trust(context)

        async def answer(request: web.Request) -> web.Response:
            assert request.transport is not None
            peer = request.transport.get_extra_info("peercert") or {}
            names = [v for rdn in peer.get("subjectAltName", ()) for v in rdn[1:]]
            text = ",".join(names) or "no client certificate"
            return web.json_response(completion(text))

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
