"""ICE servers as RFC 9725 Link headers, with static or TURN REST credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from signaling.sdp.ice_servers import IceServerError, IceServers, turn_rest_credentials


def test_stun_and_turn_links_with_static_credentials() -> None:
    servers = IceServers(
        (
            "stun:stun.example.net",
            "turn:turn.example.net:3478?transport=udp",
            "turns:[2001:db8::1]",
        ),
        username="user",
        credential="s3cret",
    )
    assert servers.link_headers(now=0) == [
        '<stun:stun.example.net>; rel="ice-server"',
        '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="user"; '
        'credential="s3cret"; credential-type="password"',
        '<turns:[2001:db8::1]>; rel="ice-server"; username="user"; '
        'credential="s3cret"; credential-type="password"',
    ]


def test_turn_rest_credentials_are_what_a_turn_server_recomputes() -> None:
    servers = IceServers(("turn:127.0.0.1:3478",), turn_secret="shared", turn_ttl=600)
    (link,) = servers.link_headers(now=1_000_000.5)
    assert 'username="1000600:litesfu"' in link
    expected = hmac.new(b"shared", b"1000600:litesfu", hashlib.sha1).digest()
    assert f'credential="{base64.b64encode(expected).decode()}"' in link
    assert turn_rest_credentials("shared", "litesfu", 1000600) == (
        "1000600:litesfu",
        base64.b64encode(expected).decode(),
    )


def test_no_servers_no_links() -> None:
    assert IceServers().link_headers(now=0) == []


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"uris": ("http://turn.example.net",)}, "is not a stun:"),
        ({"uris": ("turn:host\r\nX-Evil: 1",)}, "is not a stun:"),
        ({"uris": ("turn:host:99999",)}, "bad port"),
        ({"uris": ("stun:host?transport=tcp",)}, "only TURN"),
        ({"uris": ("turn:h",), "username": "u"}, "go together"),
        ({"uris": ("turn:h",), "username": 'u"x', "credential": "c"}, "printable"),
        ({"uris": ("turn:h",), "username": "u", "credential": "c", "turn_secret": "s"}, "exclude"),
    ],
)
def test_bad_configuration_is_refused_at_start(kwargs: dict, reason: str) -> None:
    with pytest.raises(IceServerError, match=reason):
        IceServers(**kwargs)
