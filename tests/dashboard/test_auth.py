"""`SessionKeeper` alone: the cluster token compared as a whole, session cookies that expire and
cannot be forged or moved to another dashboard."""

from __future__ import annotations

import pytest

from actorcore.dashboard.auth import SessionKeeper

pytestmark = pytest.mark.timeout(10)


def test_the_token_must_match_exactly():
    keeper = SessionKeeper("s3cret-token")
    assert keeper.token_matches("s3cret-token") and keeper.token_matches(" s3cret-token\n")
    assert not keeper.token_matches("s3cret-toke") and not keeper.token_matches("s3cret-token2")
    assert not keeper.token_matches("")


def test_a_cookie_is_valid_until_it_expires():
    keeper = SessionKeeper("token", lifetime=60)
    cookie = keeper.new_cookie(now=1000.0)
    assert cookie.startswith("1060.")
    assert keeper.cookie_valid(cookie, now=1059.0)
    assert not keeper.cookie_valid(cookie, now=1060.0)


def test_a_forged_or_foreign_cookie_is_refused():
    keeper = SessionKeeper("token", lifetime=60)
    expiry, signature = keeper.new_cookie(now=1000.0).split(".")
    assert not keeper.cookie_valid(f"9999999999.{signature}", now=1000.0)  # a later expiry, same signature
    assert not keeper.cookie_valid(f"{expiry}.{'0' * len(signature)}", now=1000.0)
    assert not keeper.cookie_valid("garbage", now=1000.0) and not keeper.cookie_valid("", now=1000.0)
    other = SessionKeeper("token", lifetime=60)  # another dashboard process: another server secret
    assert not other.cookie_valid(f"{expiry}.{signature}", now=1000.0)


def test_no_token_no_dashboard():
    with pytest.raises(ValueError, match="needs the cluster token"):
        SessionKeeper("")
