"""Which addresses the answers advertise as host candidates.

An ICE-lite server is reached only at the candidates it advertises, so the default must be
addresses a browser will actually pair with: Firefox ignores loopback candidates unless told
otherwise, and a phone on the LAN cannot reach 127.0.0.1. With no `--candidate` (or
`--candidate auto`) the server advertises its interface addresses, loopback last, and puts
first the IP literal the client used in the Host header of its WHIP/WHEP request (as SRS's
`api_as_candidates` does): that address demonstrably reaches this host. A `stun:HOST:PORT`
value adds the address that STUN server sees the media socket at (sfu/protocol/reflexive.py).
"""

from __future__ import annotations

import ipaddress

import psutil

AUTO = "auto"
LOOPBACK = ("127.0.0.1", "::1")
MAX_CANDIDATES = 16  # host candidates per answer; more only lengthens every answer and check


def interface_addresses() -> list[str]:
    """Unicast addresses of this host's interfaces that are up, IPv4 before IPv6."""
    stats = psutil.net_if_stats()
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for address in addresses:
            try:  # link-layer (MAC) addresses do not parse and are skipped
                ip = ipaddress.ip_address(address.address.split("%")[0])
            except ValueError:
                continue
            found.append(ip)
    return [str(ip) for ip in sorted(set(found), key=lambda ip: (ip.version, ip))]


def usable(address: str, ipv6: bool) -> bool:
    """True for an address a remote peer could send to: not link-local (it needs a zone),
    multicast or unspecified, and IPv6 only when the media socket carries IPv6."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and not ipv6:
        return False
    return not (ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def default_candidates(addresses: list[str], ipv6: bool) -> list[str]:
    """Non-loopback addresses first, then loopback for clients on this machine."""
    chosen = [a for a in addresses if usable(a, ipv6) and not ipaddress.ip_address(a).is_loopback]
    chosen += [a for a in LOOPBACK if ipv6 or ":" not in a]
    return chosen[:MAX_CANDIDATES]


def host_literal(host_header: str | None) -> str | None:
    """The IP literal of an HTTP Host header ("192.0.2.7:8080", "[2001:db8::1]:8080"), or
    None when the client named the server by a host name or sent no Host."""
    if not host_header or len(host_header) > 64:
        return None
    host = host_header
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def for_request(base: list[str], host_header: str | None, auto: bool, ipv6: bool) -> list[str]:
    """The candidates of one answer: `base`, led by the Host literal when candidates are
    automatic and that literal is an address this server could be reached at."""
    if not auto:
        return base
    literal = host_literal(host_header)
    if literal is None or not usable(literal, ipv6) or literal in base[:1]:
        return base
    return [literal, *(a for a in base if a != literal)][:MAX_CANDIDATES]


STUN_PREFIX = "stun:"
MAX_STUN_SERVERS = 4  # each is asked every few minutes; more would add nothing but traffic


def stun_server(value: str) -> tuple[str, int]:
    """(host, port) of a `--candidate stun:HOST:PORT` ("stun:[2001:db8::1]:3478" for IPv6);
    ValueError with a reason."""
    rest = value.removeprefix(STUN_PREFIX)
    host, colon, port_text = rest.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port_text.isdigit():
        raise ValueError(f"{value!r} is not stun:HOST:PORT")
    port = int(port_text)
    if not 0 < port < 65536 or len(host) > 253 or any(c in host for c in "/@ "):
        raise ValueError(f"{value!r}: no such host or port")
    return host, port


def split_stun(values: list[str]) -> tuple[list[str], tuple[tuple[str, int], ...]]:
    """--candidate values apart: the addresses (or auto) and the STUN servers to ask."""
    servers = tuple(stun_server(v) for v in values if v.startswith(STUN_PREFIX))
    if len(servers) > MAX_STUN_SERVERS:
        raise ValueError(f"at most {MAX_STUN_SERVERS} STUN servers")
    return [v for v in values if not v.startswith(STUN_PREFIX)], servers
