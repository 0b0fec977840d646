"""Bearer secrets: generation, hashing and comparison.

Only sha256 hashes reach the database; a leaked table gives no usable token. Tokens carry
256 bits of randomness, so a fast hash is enough (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Prefixes tell people (and secret scanners) what kind of token they are looking at.
ADMIN_PREFIX = "cnt_admin_"
API_KEY_PREFIX = "cnt_key_"
AGENT_PREFIX = "cnt_agent_"
ENROLL_PREFIX = "cnt_enroll_"
DATA_PLANE_PREFIX = "cnt_dp_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison, so timing reveals nothing about a stored hash."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# Operator roles, weakest first: a role may do what every role before it may.
ROLES = ("viewer", "operator", "admin")


def allows(role: str, needed: str) -> bool:
    """Whether `role` may act where `needed` is required (an unknown role may nothing)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def derived_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose (signing console sessions) from a secret every replica shares
    (the admin token): a leaked derived key reveals neither the secret nor another key."""
    return hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()
