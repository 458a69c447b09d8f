"""TURN REST credentials and the browser's ICE configuration."""

from __future__ import annotations

import base64
import hashlib
import hmac

from server.core.ice import ice_configuration, turn_credential


def test_turn_credential_follows_the_turn_rest_api_scheme() -> None:
    credential = turn_credential("s3cret", now_unix=1_000, ttl_seconds=3_600, opaque_id="abc")
    assert credential.username == "4600:abc"
    expected = base64.b64encode(hmac.new(b"s3cret", b"4600:abc", hashlib.sha1).digest()).decode()
    assert credential.password == expected
    assert credential.expires_at_unix == 4_600


def test_without_turn_only_stun_is_offered_and_relay_only_cannot_apply() -> None:
    config = ice_configuration(
        stun_urls=["stun:stun.clinic.example:3478"],
        turn_urls=[],
        turn_secret="",
        relay_only=True,
        now_unix=0,
        ttl_seconds=60,
        opaque_id="x",
    )
    assert config == {
        "iceServers": [{"urls": ["stun:stun.clinic.example:3478"]}],
        "iceTransportPolicy": "all",
        "ttlSeconds": 0,  # no TURN credentials, nothing to refresh
    }


def test_relay_only_with_turn_hides_addresses_behind_the_relay() -> None:
    config = ice_configuration(
        stun_urls=[],
        turn_urls=["turn:turn.clinic.example:3478"],
        turn_secret="k",
        relay_only=True,
        now_unix=10,
        ttl_seconds=60,
        opaque_id="x",
    )
    assert config["iceTransportPolicy"] == "relay"
    assert config["ttlSeconds"] == 60  # the page fetches fresh credentials before then
    (turn,) = config["iceServers"]
    assert turn["username"] == "70:x" and turn["credential"]
