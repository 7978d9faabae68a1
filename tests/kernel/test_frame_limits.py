"""The frame size limit after the handshake: a message too large for it is refused where it is
sent, with an error that names it and the setting; a peer that sends a larger frame anyway is
cut off (docs/architecture.md, "Security model")."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actorcore.env import MAX_FRAME_ENV
from actorcore.kernel import PeerLostError, SerializationError
from actorcore.kernel.remote import peers as peers_module
from actorcore.kernel.remote.connections import MessageTooLargeError

pytestmark = pytest.mark.timeout(60)

MB = 1 << 20


@pytest.mark.parametrize("role", ["uds", "tcp"])
async def test_a_message_over_the_limit_is_refused_by_its_sender(system, peers, monkeypatch, role):
    peer = await peers(role)
    ref = system.ref_from_uri(peer.uris[0])
    monkeypatch.setattr(peers_module, "MAX_PAYLOAD_BYTES", 1 * MB)
    big = ("echo", bytes(2 * MB))
    expected = rf"message to actor collector is \d+ bytes .*{MAX_FRAME_ENV}"
    for send in (lambda: ref.tell(big), lambda: ref.ask(big, timeout=10)):
        with pytest.raises(MessageTooLargeError, match=expected) as info:
            send()
        assert isinstance(info.value, SerializationError)
    assert await ref.ask(("echo", "small"), timeout=10) == "small"


@pytest.mark.parametrize("role", ["uds", "tcp"])
async def test_a_frame_over_the_receivers_limit_cuts_the_sender_off(system, peers, role):
    peer = await peers(role, env={MAX_FRAME_ENV: str(2 * MB)})
    ref = system.ref_from_uri(peer.uris[0])
    with pytest.raises(PeerLostError):
        await ref.ask(("echo", bytes(3 * MB)), timeout=10)
    assert await ref.ask(("echo", bytes(MB)), timeout=10) == bytes(MB), "the peer lives on"


@pytest.mark.parametrize("value", ["lots", "1000"])
def test_a_bad_frame_limit_setting_is_named(value):
    result = subprocess.run(
        [sys.executable, "-c", "import actorcore.kernel"], env={MAX_FRAME_ENV: value, "PATH": ""},
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode != 0
    assert f"{MAX_FRAME_ENV}={value!r}" in result.stderr
