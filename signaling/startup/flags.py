"""The command line: every flag, its SFU_* variable, its default, and the checks between them.

Imports no media-plane module: the --workers front parses the same flags.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from signaling.observe.metrics import MAX_PER_STREAM
from signaling.sdp.candidates import AUTO, split_stun
from signaling.sdp.host_name import MODES, OFF
from signaling.sdp.ice_servers import IceServerError, IceServers
from signaling.serving.process import tls_context
from signaling.startup import settings
from signaling.startup.cluster_flags import add_cluster_flags, check_cluster_args
from signaling.startup.declare import Parser, flag
from signaling.startup.egress_flags import add_egress_flags, check_egress_args
from signaling.startup.settings import ReplacingAppend
from signaling.startup.values import (
    LOG_LEVELS,
    bind_host,
    candidate,
    count,
    directory,
    http_url,
    log_level,
    port,
    positive,
    rate,
    readable_file,
    seconds,
    text,
    whole,
)

DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[2] / "web"


# Flags of the "limits" group: (flag, kind, default, meaning).
LIMIT_FLAGS = (
    ("--max-sessions", count, "1000",
     "live sessions in all (per worker with --workers); more get 503"),
    ("--max-players", count, "0",
     "players per stream (per worker with --workers); more get 503"),
    ("--client-pending", count, "20",
     "sessions one client address may have not yet connected; more get 429"),
    ("--client-rate", rate, "10",
     "sessions one client address may create per second; more get 429"),
    ("--client-burst", positive, "20",
     "sessions one client address may create at once"),
    ("--client-connections", count, "64",
     "open HTTP connections per client address, more are closed at once; "
     "not applied with --trust-proxy"),
    ("--header-timeout", seconds, "5",
     "seconds an HTTP connection has to send a request's headers"),
    ("--tcp-connections", positive, "256",
     "ICE-TCP connections at once (per worker with --workers); when all are taken, one that "
     "never carried an authenticated check is closed for a new one"),
    ("--max-room-participants", positive, "100",
     "participants one room may hold (each a publish and a subscribe session); more get 403"),
    ("--tcp-per-address", positive, "16",
     "ICE-TCP connections one client address (IPv6: its /64) may hold; more are closed at once"),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Every flag, each with its kind of value, variable, default and help."""
    parser = Parser(
        prog="litesfu",
        description="LiteSFU: a WebRTC SFU speaking WHIP/WHEP. Every flag has an SFU_* variable.",
    )
    net = parser.add_argument_group("addresses")
    flag(
        net,
        "--http-host",
        bind_host,
        "127.0.0.1",
        "address the pages and API bind; 0.0.0.0 opens them to the LAN",
    )
    flag(net, "--http-port", port, "8080", "port of the pages and API")
    flag(net, "--udp-host", bind_host, "0.0.0.0", "address the media socket binds")
    flag(
        net,
        "--udp-port",
        port,
        "8000",
        "the one media port (0: the kernel picks); open it in the firewall",
    )
    flag(
        net,
        "--candidate",
        candidate,
        None,
        "address clients send media to: an IP, or a host name resolved once at start; "
        "repeatable; 'auto': every interface address and loopback, led by the IP literal of "
        "a request's Host header; stun:HOST:PORT (up to 4, beside either): also the address "
        "that STUN server sees the media port at, as a srflx candidate ranked first",
        shown="auto",
        action=ReplacingAppend,
    )
    flag(
        net,
        "--tcp-port",
        port,
        None,
        "port of the passive ICE-TCP listener, for clients whose UDP is blocked; 0 disables",
        shown="the UDP port's number",
    )
    flag(
        parser,
        "--candidate-from-host",
        None,
        OFF,
        "a domain name in a request's Host header leads the candidates: 'resolve' its "
        "addresses (looked up at once, cached 60 s), or the 'name' itself for the browser to "
        "resolve; for a server reached by name whose public address is on no interface",
        choices=MODES,
    )
    flag(
        parser,
        "--http-ice-tcp",
        None,
        None,
        "the HTTP(S) port also takes ICE-TCP, told apart by the first bytes, and answers "
        "name it: a client whose network allows only HTTPS still reaches the media",
        shown="on",
        action=argparse.BooleanOptionalAction,
    )
    flag(
        parser,
        "--session-timeout",
        seconds,
        "30",
        "seconds without a valid packet before a session ends",
    )
    flag(
        parser,
        "--pending-timeout",
        seconds,
        "10",
        "seconds a new session has to connect (ICE and DTLS) before it ends",
    )
    flag(
        parser,
        "--web-root",
        directory,
        None,
        "directory the pages are served from",
        shown="the web/ folder beside the code",
    )
    flag(parser, "--log-level", log_level, "info", f"one of {', '.join(LOG_LEVELS)}")
    scale = parser.add_argument_group("processes")
    flag(
        scale,
        "--workers",
        positive,
        "1",
        "media processes; above 1 this one only serves HTTP and hands each session to a "
        "worker with its own UDP port, udp-port + i, or a free one if --udp-port is 0",
    )
    flag(
        scale,
        "--worker-players",
        positive,
        "400",
        "players of one stream its origin worker takes before the rest go to other "
        "workers, relayed to them",
    )
    # Set by the front on the workers it starts: internal routes, log tag, exit with the front.
    scale.add_argument("--worker-index", type=count, default=None, help=argparse.SUPPRESS)
    add_cluster_flags(parser)
    add_egress_flags(parser)
    limits = parser.add_argument_group("limits (0 means none)")
    for name, kind, default, meaning in LIMIT_FLAGS:
        flag(limits, name, kind, default, meaning)
    tls = parser.add_argument_group("HTTPS")
    flag(
        tls,
        "--tls-cert",
        readable_file,
        None,
        "PEM certificate (chain) to serve HTTPS with, beside --tls-key: browsers give the "
        "camera only to secure pages, so publishing from another machine needs it",
    )
    flag(tls, "--tls-key", readable_file, None, "PEM private key of --tls-cert")
    flag(
        parser,
        "--stream-data-replies",
        None,
        None,
        "let a stream's players send on its data channels, to the publisher; by default "
        "their messages are dropped and counted",
        shown="off",
        action="store_true",
    )
    flag(
        tls,
        "--trust-proxy",
        None,
        None,
        "behind a reverse proxy: the client is the right-most X-Forwarded-For address",
        shown="off",
        action="store_true",
    )
    auth = parser.add_argument_group(
        "authorization (see signaling/security/auth.py for the token format)"
    )
    flag(
        auth,
        "--auth-token",
        text,
        None,
        "a static bearer token allowing everything; repeatable",
        variable="SFU_AUTH_TOKENS",
        action=ReplacingAppend,
    )
    flag(auth, "--auth-secret", text, None, "HMAC secret of signed per-stream tokens")
    flag(
        auth,
        "--auth-stats",
        None,
        None,
        "require a token for the stats API too",
        action=argparse.BooleanOptionalAction,
        shown="on whenever a token or secret is set",
    )
    flag(auth, "--hook-url", http_url, None, "http(s) URL asked before every publish and play")
    relay = parser.add_argument_group("STUN/TURN servers offered to clients (Link headers)")
    flag(
        relay,
        "--ice-server",
        text,
        None,
        'a stun:, turn: or turns: URI sent as Link: rel="ice-server"; repeatable',
        action=ReplacingAppend,
    )
    flag(relay, "--ice-server-username", text, None, "static TURN username")
    flag(relay, "--ice-server-credential", text, None, "static TURN password")
    flag(
        relay,
        "--turn-secret",
        text,
        None,
        "secret shared with the TURN server (coturn use-auth-secret): short-lived "
        "credentials per answer",
    )
    ops = parser.add_argument_group("operation")
    flag(
        ops,
        "--config",
        readable_file,
        None,
        "a TOML file of settings named like the flags; flags and SFU_* variables win "
        "(see litesfu.example.toml)",
    )
    ops.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings (secrets masked) and exit; default off",
    )
    flag(ops, "--log-format", None, "text", "json: one object per line", choices=("text", "json"))
    flag(
        ops,
        "--metrics-per-stream",
        whole(0, MAX_PER_STREAM, "a count"),
        "0",
        "label /metrics by stream name for this many streams",
    )
    flag(
        ops, "--max-event-streams", positive, "200", "open server-sent event streams; more get 503"
    )
    return parser


def convert_listed_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check a repeatable flag's items that came from its variable or the config file, which
    argparse leaves unconverted, with the flag's own kind of value."""
    for action in parser._actions:
        items = getattr(args, action.dest, None)
        if not isinstance(action, argparse._AppendAction) or action.type is None or not items:
            continue
        if items != action.default:
            continue  # given as flags: argparse converted them
        try:
            setattr(args, action.dest, [action.type(item) for item in items])
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{action.option_strings[0]}: {exc}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Every flag checked, alone and against the others, before anything binds; a mistake
    ends the process with one line and status 2."""
    parser = build_parser()
    args = settings.parse(build_parser, argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    convert_listed_defaults(parser, args)
    args.web_root = args.web_root or DEFAULT_WEB_ROOT
    given = args.candidate
    try:
        args.candidate, args.stun_servers = split_stun(args.candidate or [])
    except ValueError as exc:
        parser.error(f"--candidate: {exc}")
    if args.candidate_from_host not in MODES:  # argparse checks flags, not SFU_* defaults
        parser.error(f"--candidate-from-host must be one of {', '.join(MODES)}")
    args.http_ice_tcp = args.http_ice_tcp is not False  # on unless turned off
    args.candidate = args.candidate or [AUTO]
    if AUTO in args.candidate and len(args.candidate) > 1:
        parser.error("--candidate auto stands alone (beside stun: servers)")
    try:
        args.ice_servers = IceServers(
            tuple(args.ice_server or ()),
            args.ice_server_username,
            args.ice_server_credential,
            args.turn_secret,
        )
    except IceServerError as exc:
        parser.error(str(exc))
    if not args.auth_token:
        args.auth_token = []
    auth_on = bool(args.auth_token or args.auth_secret)
    if args.auth_stats and not auth_on:
        parser.error("--auth-stats needs --auth-token or --auth-secret")
    if args.auth_stats is None:
        args.auth_stats = auth_on
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    try:
        tls_context(args)
    except ValueError as exc:
        parser.error(str(exc))
    check_cluster_args(parser, args)
    check_egress_args(parser, args)
    if args.print_config:
        shown = argparse.Namespace(**{**vars(args), "candidate": given or args.candidate})
        print(settings.render(parser, shown), end="")
        raise SystemExit(0)
    return args
