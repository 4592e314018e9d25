"""Default host candidates: interface addresses, loopback last, the Host literal first."""

from __future__ import annotations

import ipaddress

import pytest

from signaling.sdp.candidates import (
    MAX_CANDIDATES,
    default_candidates,
    for_request,
    host_literal,
    interface_addresses,
)


def test_this_hosts_interfaces_include_loopback_and_parse() -> None:
    addresses = interface_addresses()
    assert "127.0.0.1" in addresses
    versions = [ipaddress.ip_address(a).version for a in addresses]
    assert versions == sorted(versions)  # IPv4 first


def test_defaults_put_reachable_addresses_before_loopback() -> None:
    found = ["127.0.0.1", "192.0.2.7", "169.254.1.1", "::1", "2001:db8::5", "fe80::1"]
    assert default_candidates(found, ipv6=True) == ["192.0.2.7", "2001:db8::5", "127.0.0.1", "::1"]
    assert default_candidates(found, ipv6=False) == ["192.0.2.7", "127.0.0.1"]
    many = [f"192.0.2.{i}" for i in range(1, 40)]
    assert len(default_candidates(many, ipv6=False)) == MAX_CANDIDATES


@pytest.mark.parametrize(
    ("header", "literal"),
    [
        ("192.0.2.7:8080", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("[2001:db8::1]:8080", "2001:db8::1"),
        ("[::1]", "::1"),
        ("example.net:8080", None),
        ("localhost", None),
        ("", None),
        (None, None),
        ("[not-an-ip]:80", None),
        ("1" * 100, None),
    ],
)
def test_host_literal(header: str | None, literal: str | None) -> None:
    assert host_literal(header) == literal


def test_host_literal_leads_automatic_candidates_only() -> None:
    base = ["10.1.2.3", "127.0.0.1"]
    assert for_request(base, "192.0.2.7:8080", auto=True, ipv6=False) == [
        "192.0.2.7",
        "10.1.2.3",
        "127.0.0.1",
    ]
    assert for_request(base, "127.0.0.1:8080", auto=True, ipv6=False) == [
        "127.0.0.1",
        "10.1.2.3",
    ]
    assert for_request(base, "192.0.2.7:8080", auto=False, ipv6=False) == base
    assert for_request(base, "[2001:db8::1]:80", auto=True, ipv6=False) == base  # no IPv6 socket
    assert for_request(base, "example.net", auto=True, ipv6=False) == base
