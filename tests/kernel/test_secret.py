"""`ClusterSecret`: MACs per purpose, over unambiguous sequences, never showing the secret."""

from __future__ import annotations

import pytest

from actorcore.kernel.secret import MAC_SIZE, ClusterSecret

pytestmark = pytest.mark.timeout(10)


def test_the_same_secret_makes_the_same_mac_in_any_process():
    a, b = ClusterSecret("tok"), ClusterSecret(b"tok")
    assert a.mac("handshake", b"x", b"y") == b.mac("handshake", b"x", b"y")
    assert len(a.mac("handshake")) == MAC_SIZE
    assert a.verify("handshake", b.mac("handshake", b"x", b"y"), b"x", b"y")


def test_a_mac_is_bound_to_its_secret_purpose_and_parts():
    secret = ClusterSecret("tok")
    mac = secret.mac("handshake", b"ab", b"c")
    assert not ClusterSecret("other").verify("handshake", mac, b"ab", b"c")
    assert not secret.verify("record", mac, b"ab", b"c")
    assert not secret.verify("handshake", mac, b"a", b"bc")  # the parts' boundaries count
    assert not secret.verify("handshake", mac, b"abc")


def test_an_empty_secret_is_refused_and_none_is_shown():
    with pytest.raises(ValueError, match="cluster secret is empty"):
        ClusterSecret("")
    assert "tok" not in repr(ClusterSecret("tok"))
