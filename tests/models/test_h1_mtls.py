"""An endpoint's own TLS trust and identity (`TlsOptions`) against an upstream that
requires client certificates, all from a private CA (trustme)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import orjson
import pytest
import trustme
from tls_support import Files, MutualUpstream

from bastion.models.h1 import H1Disconnected, H1Pool, H1Target, H1TLSError
from bastion.models.transport_options import TlsOptions


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    return Files(tmp_path_factory.mktemp("mtls"))


@pytest.fixture
async def upstream(files) -> AsyncIterator[MutualUpstream]:
    server = MutualUpstream()
    await server.start(files)
    yield server
    await server.stop()


async def whoami(options: TlsOptions, url: str) -> str:
    pool = H1Pool(connect_timeout=2.0, ssl_context=options.context())
    try:
        resp = await pool.request("GET", H1Target.parse(url + "/whoami"), {}, None)
        body = await resp.content.read()
        resp.release()
        return str(orjson.loads(body)["choices"][0]["message"]["content"])
    finally:
        await pool.aclose()


@pytest.mark.parametrize("split", [True, False], ids=["cert+key", "one-pem"])
async def test_upstream_sees_the_client_certificate(upstream, files, split) -> None:
    if split:
        options = TlsOptions(
            ca_file=files.ca_file, cert_file=files.cert_file, key_file=files.key_file
        )
    else:
        options = TlsOptions(ca_file=files.ca_file, cert_file=files.both_file)
    assert await whoami(options, upstream.url) == "bastion-client@example.com"


async def test_without_the_private_ca_the_upstream_is_not_trusted(upstream, files) -> None:
    options = TlsOptions(cert_file=files.cert_file, key_file=files.key_file)
    with pytest.raises(H1TLSError, match="certificate verify failed") as caught:
        await whoami(options, upstream.url)
    assert str(caught.value).startswith(f"TLS handshake with {upstream.url[8:]} failed")


async def test_without_a_client_certificate_the_upstream_refuses(upstream, files) -> None:
    # TLS 1.3: the client's handshake is over before the server checks for a
    # certificate; its refusal ends the connection before any answer (asyncio reports
    # it as a plain close).
    with pytest.raises((H1TLSError, H1Disconnected)):
        await whoami(TlsOptions(ca_file=files.ca_file), upstream.url)


async def test_verify_off_accepts_an_untrusted_certificate(upstream, files) -> None:
    options = TlsOptions(cert_file=files.cert_file, key_file=files.key_file, verify=False)
    assert await whoami(options, upstream.url) == "bastion-client@example.com"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (TlsOptions(ca_file="/nonexistent/ca.pem"), FileNotFoundError),
        (TlsOptions(cert_file="/nonexistent/cert.pem"), FileNotFoundError),
        (TlsOptions(key_file="/tmp/key.pem"), ValueError),
    ],
)
def test_unusable_files_fail_when_the_context_is_built(options, error) -> None:
    with pytest.raises(error):
        options.context()


def test_a_key_that_does_not_match_the_certificate_is_refused(files, tmp_path) -> None:
    other = trustme.CA().issue_cert("someone-else")
    key = tmp_path / "other.key"
    other.private_key_pem.write_to_path(str(key))
    with pytest.raises(ssl.SSLError):
        TlsOptions(cert_file=files.cert_file, key_file=str(key)).context()
