"""`check_store(url)`: can the store a URL names be opened? Asked by `bastion check-config`
and by `bastion serve` before it starts, so that a store that cannot be opened is one
clear line rather than a traceback from the first worker that tries.

Nothing is created: for SQLite the directory must exist and be writable (SQLite writes
its journal beside the database), and a database file already there must be a writable
file; PostgreSQL and Redis get one connection attempt with a short timeout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from bastion.memory.factory import sqlite_path

# Seconds a PostgreSQL or Redis connection attempt may take.
CONNECT_TIMEOUT = 3.0


async def check_store(url: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> str:
    """What was checked, as a short phrase; ValueError saying what is wrong otherwise.
    The URL's password never appears in either."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return check_sqlite(sqlite_path(url))
    try:
        if scheme in ("postgresql", "postgres"):
            import asyncpg

            conn = await asyncpg.connect(url, timeout=connect_timeout)
            await conn.close()
        elif scheme in ("redis", "rediss", "unix"):
            from redis.asyncio import Redis

            client = Redis.from_url(
                url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout
            )
            try:
                await client.ping()
            finally:
                await client.aclose()
        else:
            raise ValueError(f"unsupported store URL {redact_url(url)!r}")
    except ValueError:
        raise
    except Exception as exc:  # a probe: whatever the client raised, say it in one line
        reason = redact_url(str(exc)) or type(exc).__name__
        raise ValueError(f"cannot connect to {redact_url(url)}: {reason}") from None
    return f"{redact_url(url)}: connected"


def check_sqlite(path: str) -> str:
    """The checks for a SQLite file, without creating it (see the module docstring)."""
    if path == ":memory:":
        return "in memory: nothing to check"
    file = Path(path)
    directory = file.parent
    if not directory.is_dir():
        where = "" if file.is_absolute() else f" (relative to the working directory {os.getcwd()})"
        raise ValueError(
            f"the directory {str(directory)!r} of the SQLite file does not exist{where}; "
            "sqlite:///relative/path.db is relative, sqlite:////absolute/path.db absolute"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"the directory {str(directory)!r} of the SQLite file is not writable")
    if file.exists():
        if not file.is_file():
            raise ValueError(f"{path!r} is not a file")
        if not os.access(file, os.R_OK | os.W_OK):
            raise ValueError(f"the SQLite file {path!r} is not readable and writable")
        return f"{file.resolve()}: exists, writable"
    return f"{file.resolve()}: directory writable (the file is created at start)"


def redact_url(text: str) -> str:
    """`text` with the password of any `scheme://user:password@` in it starred out."""
    return re.sub(r"//([^:/@\s]*):[^@/\s]*@", r"//\1:***@", text)
