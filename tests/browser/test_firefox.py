"""Firefox ESR with stock ICE settings publishes and plays through the pages, also with Chromium.

Stock Firefox gathers no loopback candidate, so a server advertising 127.0.0.1 is out of its
reach. The server here runs in a network namespace the fixture creates, listening on the
namespace's end of a veth pair (198.18.0.0/15, the benchmarking range, which no real network
uses) with its default candidates, which must include that address; the browsers stay
outside and reach it over the pair, the way a browser reaches `make run` on a LAN address.
A second server there has UDP to its media port dropped by nftables, so Chromium can reach it
only over ICE-TCP. Nothing leaves the two ends of the pair.

The page origin is then not localhost, so both browsers are told to treat it as secure (or
getUserMedia is not there); that is about the page, not about ICE.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.launcher import ServerProcess, start_server, stop_server

from .conftest import CHROMIUM_ARGS, Browsing, checked_browsing, launch_chromium
from .firefox import FIREFOX, PROFILE_PREFS, Firefox, from_remote, user_js
from .netns import Namespace, skip_or_fail, veth_namespace
from .test_data_channels import relay_messages
from .test_pages import FIRST_MEDIA_S, assert_grows, start_publishing

pytestmark = pytest.mark.timeout(180)
NFT = "/usr/sbin/nft"


@pytest.fixture(scope="module")
def namespace() -> Iterator[Namespace]:
    """A fresh namespace for the module's servers."""
    with veth_namespace("litesfu-ff", "lsff", 0) as ns:
        yield ns


@pytest.fixture(scope="module")
def ns_server(namespace: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The server inside the namespace; one for the module, since the browsers are told
    its origin when they start."""
    server = start_server(
        tmp_path_factory.mktemp("ns-server"),
        host=namespace.inside,
        prefix=namespace.exec_prefix(),
        advertise_host=False,  # the default candidates must be ones stock browsers reach
    )
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module")
def firefox(ns_server: ServerProcess, namespace: Namespace) -> Iterator[Firefox]:
    if not FIREFOX.exists():
        skip_or_fail(f"{FIREFOX} not installed (run scripts/install-firefox.sh)")
    browser = Firefox({"dom.securecontext.allowlist": namespace.inside})
    print(f"{browser.version}, profile {browser.profile}")
    try:
        yield browser
    finally:
        browser.close()


def udp_blocked_server(
    namespace: Namespace, directory: Path, table: str, *extra: str
) -> Iterator[ServerProcess]:
    """A server in the namespace (with `extra` flags) whose media port drops every UDP
    datagram: an nftables rule inside the namespace, in a table of its own."""
    if not Path(NFT).exists():
        skip_or_fail(f"{NFT} not installed (run scripts/install-nftables.sh)")
    server = start_server(
        directory,
        *extra,
        host=namespace.inside,
        prefix=namespace.exec_prefix(),
        advertise_host=False,
    )
    rules = (
        f"table inet {table} {{\n chain input {{\n  type filter hook input priority 0;\n"
        f"  udp dport {server.udp_port} drop\n }}\n}}\n"
    )
    try:
        block_in_namespace(namespace, rules)
        yield server
    finally:
        stop_server(server)
        subprocess.run(
            [*namespace.exec_prefix(), NFT, "delete", "table", "inet", table],
            capture_output=True,
            timeout=10,
        )
    assert "Traceback" not in server.log(), server.log()


def block_in_namespace(namespace: Namespace, rules: str) -> None:
    """Load nftables `rules` inside the namespace; skip (or fail in CI) when that cannot be."""
    blocked = subprocess.run(
        [*namespace.exec_prefix(), NFT, "-f", "-"],
        input=rules,
        capture_output=True,
        text=True,
        timeout=10,
    )
    if blocked.returncode != 0:
        skip_or_fail(f"cannot load nftables rules: {blocked.stderr.strip()}")


@pytest.fixture(scope="module")
def tcp_only_server(
    namespace: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A second server in the namespace, its UDP dropped: only ICE-TCP can carry its sessions."""
    yield from udp_blocked_server(namespace, tmp_path_factory.mktemp("tcp"), "litesfu_no_udp")


@pytest.fixture(scope="module")
def http_port_only_server(
    namespace: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A third, its UDP dropped and with no ICE-TCP port of its own: of its ports only the
    HTTP one is reachable, as through a network that allows only HTTPS. (Dropping everything
    else would cut off the other servers in the namespace.)"""
    directory = tmp_path_factory.mktemp("http-port")
    yield from udp_blocked_server(namespace, directory, "litesfu_http_only", "--tcp-port", "0")


@pytest.fixture(scope="module")
def stock_chromium(
    ns_server: ServerProcess,
    tcp_only_server: ServerProcess,
    http_port_only_server: ServerProcess,
) -> Iterator[Any]:
    """Chromium without the loopback and mDNS switches the other browser tests use."""
    servers = (ns_server, tcp_only_server, http_port_only_server)
    origins = ",".join(server.http_url for server in servers)
    with launch_chromium(
        [*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origins}"]
    ) as chromium:
        yield chromium


@pytest.fixture
def browser_session_for_tcp(
    stock_chromium: Any,
    tcp_only_server: ServerProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Browsing]:
    session = Browsing(stock_chromium, tmp_path, request.node.name, server=tcp_only_server)
    with checked_browsing(session) as checked:
        yield checked


@pytest.fixture
def browser_session_for_http_port(
    stock_chromium: Any,
    http_port_only_server: ServerProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Browsing]:
    session = Browsing(stock_chromium, tmp_path, request.node.name, server=http_port_only_server)
    with checked_browsing(session) as checked:
        yield checked


@pytest.fixture
def cross_browsing(
    stock_chromium: Any,
    firefox: Firefox,
    ns_server: ServerProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Browsing]:
    session = Browsing(stock_chromium, tmp_path, request.node.name, server=ns_server)
    session.firefox = firefox
    with checked_browsing(session) as checked:
        yield checked


def media_addresses(server: ServerProcess) -> dict[str, str]:
    """Each session's latest media address, from the server's ICE log lines; an ICE-TCP one
    as tcp:ADDRESS, so that a session that ended on TCP does not pass for UDP."""
    pattern = r"session (\S+): (?:ICE connected from|moved from \S+ to) ((?:tcp:)?[0-9.]+):\d+"
    return dict(re.findall(pattern, server.log()))


def open_page(browsing: Browsing, browser: str, url: str, name: str) -> Any:
    if browser == "firefox":
        return browsing.open_in_firefox(url, name)
    return browsing.open(url, name)


@pytest.mark.parametrize(
    ("publisher_browser", "player_browser"),
    [("firefox", "firefox"), ("chromium", "firefox"), ("firefox", "chromium")],
)
def test_publish_and_play(
    cross_browsing: Browsing,
    ns_server: ServerProcess,
    namespace: Namespace,
    publisher_browser: str,
    player_browser: str,
) -> None:
    """publish.html in one browser, play.html in the other, frames decoded and still coming."""
    browsing = cross_browsing
    started = time.monotonic()
    sessions_before = set(media_addresses(ns_server))
    stream = f"live/{publisher_browser}-to-{player_browser}"
    base = ns_server.http_url
    publisher = open_page(
        browsing, publisher_browser, f"{base}/publish.html?stream={stream}", "publisher"
    )
    publisher.click("#start")
    sent, connected_in = browsing.wait_for(
        f"{publisher_browser} publisher connected and encoding",
        lambda: browsing.stats(publisher),
        lambda s: s["state"] == "connected" and s["framesEncoded"] > 0 and s["codec"],
        FIRST_MEDIA_S,
    )
    encoded = assert_grows(
        browsing, "framesEncoded to grow", lambda: browsing.stats(publisher)["framesEncoded"]
    )

    player = open_page(browsing, player_browser, f"{base}/play.html?stream={stream}", "player")
    got, first_in = browsing.wait_for(
        f"{player_browser} player to decode video",
        lambda: browsing.stats(player),
        lambda s: s["framesDecoded"] > 0 and s["videoWidth"] > 0 and s["codec"],
        FIRST_MEDIA_S,
    )
    decoded = assert_grows(
        browsing, "framesDecoded to grow", lambda: browsing.stats(player)["framesDecoded"]
    )
    assert got["codec"] == sent["codec"], (sent, got)
    assert "playing" in (player.text_content("#status") or "")
    assert player.text_content("#error") == ""
    # Both new sessions' media runs over the pair from our end (the browsers' checks from
    # their other addresses reach the server too, but its answers cannot get back), over UDP:
    # the browsers (Firefox with ICE-TCP on, as shipped) nominate TCP pairs too, and the
    # server keeps the higher-ranked UDP one (RFC 8445 §8.1.1).
    ours = {k: v for k, v in media_addresses(ns_server).items() if k not in sessions_before}
    assert list(ours.values()) == [namespace.outside] * 2, ours
    print(
        f"{publisher_browser} -> {player_browser}: publisher {sent['codec']} "
        f"{sent['frameWidth']} px, connected in {connected_in:.1f} s, framesEncoded "
        f"{encoded[0]} -> {encoded[1]}; player {got['codec']} {got['videoWidth']}x"
        f"{got['videoHeight']}, first frame after {first_in:.1f} s, framesDecoded "
        f"{decoded[0]} -> {decoded[1]}; {time.monotonic() - started:.1f} s in all"
    )
    browsing.screenshot(publisher, f"{publisher_browser}-publish")
    browsing.screenshot(player, f"{player_browser}-play")


def test_chromium_data_channel_reaches_a_firefox_player(
    cross_browsing: Browsing, ns_server: ServerProcess
) -> None:
    """A Chromium publisher's 1,000 ordered channel messages reach a Firefox player intact."""
    base = ns_server.http_url
    publisher = cross_browsing.open(f"{base}/publish.html", "publisher")
    player = cross_browsing.open_in_firefox(f"{base}/publish.html", "player")  # origin only
    relay_messages(cross_browsing, publisher, player, "live/data-to-firefox")


def test_firefox_publishes_simulcast(cross_browsing: Browsing, ns_server: ServerProcess) -> None:
    """Firefox's simulcast offer (rids listed in its own order) through publish.html: the
    server learns every layer from the RID extension; players pinned low and high differ."""
    browsing = cross_browsing
    base = ns_server.http_url
    stream = "live/firefox-simulcast"
    publisher = open_page(
        browsing, "firefox", f"{base}/publish.html?stream={stream}&simulcast=1", "publisher"
    )
    publisher.click("#start")
    browsing.wait_for(
        "firefox publisher connected and encoding",
        lambda: browsing.stats(publisher),
        lambda s: s["state"] == "connected" and s["framesEncoded"] > 0,
        FIRST_MEDIA_S,
    )

    def layers() -> dict[str, int]:
        with urllib.request.urlopen(f"{base}/api/v1/streams", timeout=2) as response:
            streams = json.load(response)["streams"]
        tracks = next((s["tracks"] for s in streams if s["name"] == stream), [])
        return {t["rid"]: t["packets"] for t in tracks if t.get("rid")}

    seen, _ = browsing.wait_for(
        "layers with packets",
        layers,
        lambda by_rid: len(by_rid) == 3 and sum(1 for n in by_rid.values() if n > 20) >= 2,
        45,
        interval=1.0,
    )
    print(f"firefox layers: {seen}")
    sizes = {}
    for rid in ("q", "f"):
        player = open_page(
            browsing, "chromium", f"{base}/play.html?stream={stream}&layer={rid}", rid
        )
        got, _ = browsing.wait_for(
            f"the {rid} player to decode",
            lambda player=player: browsing.stats(player),
            lambda s: s["framesDecoded"] > 0 and s["videoWidth"] > 0,
            FIRST_MEDIA_S,
        )
        sizes[rid] = got["videoWidth"]
    print(f"firefox simulcast decoded widths: {sizes}")
    assert sizes["q"] < sizes["f"]


def test_default_candidates_include_the_namespace_address(
    ns_server: ServerProcess, namespace: Namespace
) -> None:
    """The servers here run without --candidate: what stock browsers reached above is the
    server's own choice of candidates."""
    (ready,) = [line for line in ns_server.log().splitlines() if "LiteSFU ready" in line]
    assert namespace.inside in ready.partition("candidates ")[2], ready


def chromium_publishes_and_plays(browsing: Browsing, base: str, stream: str) -> str:
    """publish.html and play.html of `stream` in Chromium, frames decoded and still coming;
    a line of what was seen."""
    start_publishing(browsing, base, stream, "publisher")
    player = browsing.open(f"{base}/play.html?stream={stream}", "player")
    got, first_in = browsing.wait_for(
        "player to decode video",
        lambda: browsing.stats(player),
        lambda s: s["framesDecoded"] > 0 and s["videoWidth"] > 0,
        FIRST_MEDIA_S,
    )
    decoded = assert_grows(
        browsing, "framesDecoded to grow", lambda: browsing.stats(player)["framesDecoded"]
    )
    browsing.screenshot(player, f"chromium-play-{stream.replace('/', '-')}")
    return (
        f"first frame after {first_in:.1f} s, {got['videoWidth']}x{got['videoHeight']}, "
        f"framesDecoded {decoded[0]} -> {decoded[1]}"
    )


def test_chromium_publishes_and_plays_over_ice_tcp_when_udp_is_blocked(
    browser_session_for_tcp: Browsing, tcp_only_server: ServerProcess
) -> None:
    seen = chromium_publishes_and_plays(
        browser_session_for_tcp, tcp_only_server.http_url, "live/tcp"
    )
    log = tcp_only_server.log()
    connected = re.findall(r"session \S+: ICE connected from (\S+):\d+", log)
    assert len(connected) == 2 and all(a.startswith("tcp:") for a in connected), connected
    print(f"ICE-TCP: {seen}")


def test_chromium_publishes_and_plays_through_the_http_port_alone(
    browser_session_for_http_port: Browsing,
    http_port_only_server: ServerProcess,
    namespace: Namespace,
) -> None:
    """A network that lets through only TCP to the server's HTTP port (as one that allows
    only HTTPS does): the media goes over ICE-TCP on that same port."""
    server = http_port_only_server
    seen = chromium_publishes_and_plays(browser_session_for_http_port, server.http_url, "live/one")
    log = server.log()
    assert "also takes ICE-TCP" in log and "ICE-TCP listening" not in log
    addresses = set(media_addresses(server).values())
    assert addresses == {f"tcp:{namespace.outside}"}, addresses
    print(f"HTTP port only: {seen}")


def test_profile_keeps_stock_ice_and_fakes_media() -> None:
    """The throwaway profile fakes and grants the devices, and leaves ICE as shipped."""
    text = user_js({**PROFILE_PREFS, "dom.securecontext.allowlist": "198.18.0.2"})
    assert 'user_pref("media.navigator.streams.fake", true);\n' in text
    assert 'user_pref("media.navigator.permission.disabled", true);\n' in text
    assert 'user_pref("dom.securecontext.allowlist", "198.18.0.2");\n' in text
    assert "media.peerconnection.ice" not in text


def test_remote_values_become_python() -> None:
    """What script.callFunction returns for a stats() object, as the tests read it."""
    remote = {
        "type": "object",
        "value": [
            ["state", {"type": "string", "value": "connected"}],
            ["framesDecoded", {"type": "number", "value": 42}],
            ["jitterMs", {"type": "null"}],
            ["ratio", {"type": "number", "value": "NaN"}],
            ["tiles", {"type": "array", "value": [{"type": "boolean", "value": True}]}],
            ["node", {"type": "node", "sharedId": "x"}],
        ],
    }
    value = from_remote(remote)
    assert value["ratio"] != value["ratio"]  # NaN
    del value["ratio"]
    assert value == {
        "state": "connected",
        "framesDecoded": 42,
        "jitterMs": None,
        "tiles": [True],
        "node": "<node>",
    }
