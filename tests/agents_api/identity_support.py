"""Keys bound to resources and end users' tokens, for the identity tests: the keys'
config, and JWTs made with PyJWT as an app's login service would make them."""

from __future__ import annotations

import time
from typing import Any

import jwt
from agents_api_support import ADMIN, bearer

SECRET = "user-token-secret-0123456789abcdef-xyz"  # 38 bytes: HS256 needs 32
ISSUER = "https://login.example"
AUDIENCE = "bastion"

TENANT_A = "tenant-a-key-0123456789"  # resources under tenant-a/
TENANT_B = "tenant-b-key-0123456789"  # resources under tenant-b/
SOLO = "solo-key-0123456789"  # the one resource `solo`
USERS = "users-key-0123456789"  # acts for end users; must send their tokens
LOOSE = "loose-key-0123456789"  # bound to nothing


def user_tokens(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "secret": SECRET,
        "algorithms": ["HS256"],
        "issuer": ISSUER,
        "audience": AUDIENCE,
    }
    settings.update(overrides)
    return settings


def bound_auth(**tokens: Any) -> dict[str, Any]:
    """The keys: `ops` (admin), two tenants' prefix keys, a one-resource key, a key
    that must send users' tokens, and one bound to nothing."""
    return {
        "keys": [
            {"key": ADMIN, "name": "ops", "admin": True},
            {"key": TENANT_A, "name": "tenant-a", "resources": {"prefix": "tenant-a/"}},
            {"key": TENANT_B, "name": "tenant-b", "resources": {"prefix": "tenant-b/"}},
            {"key": SOLO, "name": "solo", "resources": {"id": "solo"}},
            {"key": USERS, "name": "users", "require_user": True},
            {"key": LOOSE, "name": "loose"},
        ],
        "user_tokens": user_tokens(**tokens),
    }


def token(
    subject: Any = "alice",
    *,
    key: Any = SECRET,
    algorithm: str = "HS256",
    expires_in: float = 300.0,
    **claims: Any,
) -> str:
    """A token for `subject`, as the app's login service signs it (`exp` from now;
    claims given as None are left out)."""
    payload: dict[str, Any] = {
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time() + expires_in),
        "iat": int(time.time()) - 5,
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


def as_user(key: str, user_token: str) -> dict[str, str]:
    return {**bearer(key), "x-bastion-user": user_token}
