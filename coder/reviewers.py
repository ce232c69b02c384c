"""Reviewers who may sign in to ``coder serve``: names and sign-in tokens.

The lead creates a token per reviewer (``coder reviewers add ann``); it is shown once, in a
sign-in link, and only its SHA-256 is stored. A plain hash (not a slow password hash) is
enough because the token is 32 random bytes from :mod:`secrets`, not something a person
chose: there is nothing to guess. Checks compare hashes in constant time, and an unknown
name costs the same comparison as a known one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from coder import lease_queries, reviewer_queries
from coder.errors import CoderError
from coder.store import Store, now

#: A reviewer name: it is recorded on every decision and shown in the app and in `ps`.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
_UNKNOWN_NAME_HASH = hashlib.sha256(b"no such reviewer").hexdigest()


@dataclass(frozen=True)
class ReviewerInfo:
    """One reviewer as ``coder reviewers list`` shows them."""

    name: str
    created_at: str
    revoked_at: str | None
    last_sign_in: str | None
    on_items: tuple[tuple[str, str], ...] = ()  # (response id, since) of live leases

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_name(name: str) -> str:
    """``name`` if it is a valid reviewer name, else a CoderError saying what is allowed."""
    if not NAME_PATTERN.fullmatch(name):
        raise CoderError(
            f"reviewer name {name!r}: use 1-40 letters, digits, '.', '_' or '-', starting "
            "with a letter (it is recorded on every decision)"
        )
    return name


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_reviewer(store: Store, name: str, *, replace: bool = False) -> str:
    """Create a sign-in token for ``name`` and return it (it is not stored in clear).

    A reviewer who already has a working token gets a CoderError unless ``replace``: then
    the old token stops working. A revoked reviewer may be added again.
    """
    check_name(name)
    row = reviewer_queries.token_row(store, name)
    if row is not None and row[3] is None and not replace:
        raise CoderError(
            f"{store.path}: reviewer {name!r} already has a token; give --replace to issue a "
            "new one (the old one stops working)"
        )
    token = secrets.token_urlsafe(32)
    reviewer_queries.save_token(store, name, token_hash(token), now())
    return token


def revoke_reviewer(store: Store, name: str) -> None:
    """Stop ``name``'s token working (their decisions stay). Running sessions end at their
    next sign-in check; a CoderError if there is no working token for that name."""
    if not reviewer_queries.revoke_token(store, name, now()):
        raise CoderError(f"{store.path}: no reviewer {name!r} with a working token")


def check_token(store: Store, name: str, token: str) -> bool:
    """True when ``token`` is ``name``'s working token (constant-time comparison)."""
    row = reviewer_queries.token_row(store, name) if NAME_PATTERN.fullmatch(name) else None
    expected = row[1] if row is not None and row[3] is None else _UNKNOWN_NAME_HASH
    matches = hmac.compare_digest(token_hash(token), expected)
    return matches and row is not None and row[3] is None


def record_sign_in(store: Store, name: str) -> None:
    """Note when ``name`` last signed in (shown by ``coder reviewers list``)."""
    reviewer_queries.mark_sign_in(store, name, now())


def list_reviewers(store: Store) -> list[ReviewerInfo]:
    """Every reviewer with a token (working or revoked) and the items they are on now."""
    leases: dict[str, list[tuple[str, str]]] = {}
    for _session, reviewer, response_id, taken_at, _expires in lease_queries.live_leases(
        store, now()
    ):
        leases.setdefault(reviewer, []).append((response_id, taken_at))
    infos = [
        ReviewerInfo(name, created, revoked, last, tuple(leases.pop(name, ())))
        for name, _hash, created, revoked, last in reviewer_queries.token_rows(store)
    ]
    # Terminal reviewers (`coder review`) hold leases without a token: show them too.
    infos += [
        ReviewerInfo(name, "", None, None, tuple(items), )
        for name, items in sorted(leases.items())
    ]
    return infos


def sign_in_link(public_url: str, name: str, token: str) -> str:
    """The link a reviewer opens. The token rides in the fragment (after '#'), which
    browsers never send to a server, so it stays out of server and proxy logs."""
    return f"{public_url.rstrip('/')}/#reviewer={quote(name)}&token={quote(token)}"
