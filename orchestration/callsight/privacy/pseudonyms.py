"""Stable pseudonyms for agents (works-council mode, `pseudonymize_agents_for_analysts`).

A pseudonym is a keyed hash of the username (HMAC-SHA256 with CALLSIGHT_PSEUDONYM_KEY from the
environment): the same person keeps the same pseudonym across runs, and without the key nobody can
recompute it from a list of usernames. The key never lands in the warehouse, only the pseudonyms do.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from callsight.site.policy import Policy
from callsight.site.settings import Settings

KEY_ENV = "CALLSIGHT_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 16
PREFIX = "Agent "
HEX_DIGITS = 10


class PseudonymKeyError(RuntimeError):
    """Pseudonymisation is on but the key is missing or too short."""


def pseudonym(key: str, username: str) -> str:
    """Pure: the stable pseudonym of one username, e.g. "Agent 3F9C2A71D0"."""
    digest = hmac.new(key.encode(), f"callsight agent|{username}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:HEX_DIGITS].upper()


def pseudonyms(key: str, usernames: Iterable[str]) -> dict[str, str]:
    """Pure: pseudonyms of all usernames; refuses a collision rather than merging two people."""
    out = {u: pseudonym(key, u) for u in usernames}
    if len(set(out.values())) != len(out):
        raise PseudonymKeyError(f"two agents got the same pseudonym with this {KEY_ENV}: choose another key")
    return out


def pseudonym_key(settings: Settings, policy: Policy) -> str | None:
    """The key when the policy asks for pseudonyms (refused when missing or short), otherwise None."""
    if not policy.works_council.pseudonymize_agents_for_analysts:
        return None
    key = settings.secret(KEY_ENV)
    if key is None:
        raise PseudonymKeyError(
            f"policy works_council.pseudonymize_agents_for_analysts is on but {KEY_ENV} is not set: analysts "
            "see pseudonyms keyed with this secret (see docs/access.md, 'Works-council mode'). Generate one, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, and keep it with your other secrets"
        )
    if len(key) < MIN_KEY_LENGTH:
        raise PseudonymKeyError(f"{KEY_ENV} must be at least {MIN_KEY_LENGTH} characters long")
    return key
