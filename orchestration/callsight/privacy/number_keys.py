"""The per-site salt of the analysts' number keys (docs/privacy.md, docs/warehouse-schema.md).

Analysts see numbers as the dashboards do (last digits XXX) and match calls of one number by
`number_key`: SHA-256 over `salt|digits`, the digits being the warehouse's phone_match_key, cut to
16 hex digits. The key is computed in the warehouse build (dbt model security.number_keys). The salt is
random, made once per site and kept in the raw store, so a number keeps its key across nights; without
it nobody can recompute the keys from a list of numbers, nor from the masked number and its 1,000
possible endings. The raw store holds the numbers themselves, so a salt beside them tells its readers
nothing new; the salt never lands in the served warehouse, in dbt's SQL or in a log.
"""

from __future__ import annotations

import hashlib

KEY_HEX_DIGITS = 16


def number_key(salt: str, digits: str) -> str:
    """Pure: the key of one number's digits (phone_match_key); equal to the dbt macro keyed_number_hash."""
    return hashlib.sha256(f"{salt}|{digits}".encode()).hexdigest()[:KEY_HEX_DIGITS]
