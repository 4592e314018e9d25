"""The command line: every flag, its SFU_* variable, its default, and the checks between them.

Imports no media-plane module: the --workers front parses the same flags.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from signaling.observe.metrics import MAX_PER_STREAM
from signaling.sdp.candidates import AUTO, split_stun
from signaling.sdp.host_name import MODES, OFF
from signaling.sdp.ice_servers import IceServerError, IceServers
from signaling.startup import settings
from signaling.startup.egress_flags import add_egress_flags, check_egress_args
from signaling.startup.settings import ReplacingAppend

DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[2] / "web"


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_flag(name: str) -> bool | None:
    """True or False when the variable is set to a yes or no word, None when it is unset."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (no limit) or more")
    return value


# Flags of the "limits" group: (flag, type, default, meaning); each has an SFU_* variable.
LIMIT_FLAGS = (
    ("--max-sessions", _count, "1000",
     "live sessions in all (per worker with --workers); more get 503"),
    ("--max-players", _count, "0",
     "players per stream (per worker with --workers); more get 503"),
    ("--client-pending", _count, "20",
     "sessions one client address may have not yet connected; more get 429"),
    ("--client-rate", float, "10",
     "sessions one client address may create per second; more get 429"),
    ("--client-burst", _positive, "20",
     "sessions one client address may create at once"),
    ("--client-connections", _count, "64",
     "open HTTP connections per client address, more are closed at once; "
     "not applied with --trust-proxy"),
    ("--header-timeout", float, "5",
     "seconds an HTTP connection has to send a request's headers"),
    ("--tcp-connections", _positive, "256",
     "ICE-TCP connections at once (per worker with --workers); when all are taken, one that "
     "never carried an authenticated check is closed for a new one"),
    ("--max-room-participants", _positive, "100",
     "participants one room may hold (each a publish and a subscribe session); more get 403"),
    ("--tcp-per-address", _positive, "16",
     "ICE-TCP connections one client address (IPv6: its /64) may hold; more are closed at once"),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Every flag, with its environment variable as the default."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="litesfu",
        description="LiteSFU: a WebRTC SFU speaking WHIP/WHEP. Every flag has an SFU_* variable.",
    )
    parser.add_argument("--http-host", default=env("SFU_HTTP_HOST", "127.0.0.1"))
    parser.add_argument("--http-port", type=int, default=int(env("SFU_HTTP_PORT", "8080")))
    parser.add_argument(
        "--udp-host",
        default=env("SFU_UDP_HOST", "0.0.0.0"),
        help="address the media socket binds (SFU_UDP_HOST)",
    )
    parser.add_argument("--udp-port", type=int, default=int(env("SFU_UDP_PORT", "8000")))
    parser.add_argument(
        "--candidate",
        action=ReplacingAppend,
        default=_env_list("SFU_CANDIDATE") or None,
        help="public IP advertised as a host candidate; repeatable; 'auto' (the default): "
        "every interface address, loopback, and first the IP literal a request's Host header "
        "names; stun:HOST:PORT (up to 4, beside either): also the address that STUN server sees "
        "the media port at, as a srflx candidate ranked first (SFU_CANDIDATE, comma-separated)",
    )
    parser.add_argument(
        "--tcp-port",
        type=_count,
        default=env("SFU_TCP_PORT"),
        help="port of the passive ICE-TCP listener, for clients whose UDP is blocked; "
        "0 disables (SFU_TCP_PORT, default the UDP port's number)",
    )
    parser.add_argument(
        "--candidate-from-host",
        choices=MODES,
        default=env("SFU_CANDIDATE_FROM_HOST", OFF),
        help="a domain name in a request's Host header leads the candidates: 'resolve' its "
        "addresses (looked up at once, cached 60 s), or the 'name' itself for the browser to "
        "resolve; for a server reached by name whose public address is on no interface "
        "(SFU_CANDIDATE_FROM_HOST, default off)",
    )
    parser.add_argument(
        "--http-ice-tcp",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("SFU_HTTP_ICE_TCP") is not False,
        help="the HTTP(S) port also takes ICE-TCP, told apart by the first bytes, and answers "
        "name it: a client whose network allows only HTTPS still reaches the media "
        "(SFU_HTTP_ICE_TCP=1 or 0, default on)",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=float(env("SFU_SESSION_TIMEOUT", "30")),
        help="seconds without a valid packet before a session ends (SFU_SESSION_TIMEOUT)",
    )
    parser.add_argument(
        "--web-root", type=Path, default=Path(env("SFU_WEB_ROOT", DEFAULT_WEB_ROOT))
    )
    parser.add_argument(
        "--pending-timeout",
        type=float,
        default=float(env("SFU_PENDING_TIMEOUT", "10")),
        help="seconds a new session has to connect (ICE and DTLS) before it ends "
        "(SFU_PENDING_TIMEOUT, default 10)",
    )
    parser.add_argument("--log-level", default=env("SFU_LOG_LEVEL", "info"))
    scale = parser.add_argument_group("processes")
    scale.add_argument(
        "--workers",
        type=_positive,
        default=env("SFU_WORKERS", "1"),
        help="media processes; above 1 this one only serves HTTP and hands each session to a "
        "worker with its own UDP port, udp-port + i, or a free one if --udp-port is 0 "
        "(SFU_WORKERS, default 1)",
    )
    scale.add_argument(
        "--worker-players",
        type=_positive,
        default=env("SFU_WORKER_PLAYERS", "400"),
        help="players of one stream its origin worker takes before the rest go to other "
        "workers, relayed to them (SFU_WORKER_PLAYERS, default 400)",
    )
    # Set by the front on the workers it starts: internal routes, log tag, exit with the front.
    scale.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    add_cluster_flags(parser)
    add_egress_flags(parser)
    limits = parser.add_argument_group("limits (0 means none)")
    for flag, kind, default, meaning in LIMIT_FLAGS:
        variable = "SFU_" + flag.removeprefix("--").upper().replace("-", "_")
        limits.add_argument(
            flag,
            type=kind,
            default=env(variable, default),
            help=f"{meaning} ({variable}, default {default})",
        )
    parser.add_argument(
        "--tls-cert",
        default=env("SFU_TLS_CERT"),
        help="PEM certificate (chain) to serve HTTPS with, beside --tls-key: browsers give the "
        "camera only to secure pages, so publishing from another machine needs it "
        "(SFU_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key", default=env("SFU_TLS_KEY"), help="PEM private key of --tls-cert (SFU_TLS_KEY)"
    )
    parser.add_argument(
        "--stream-data-replies",
        action="store_true",
        default=bool(_env_flag("SFU_STREAM_DATA_REPLIES")),
        help="let a stream's players send on its data channels, to the publisher; by default "
        "their messages are dropped and counted (SFU_STREAM_DATA_REPLIES=1)",
    )
    parser.add_argument(
        "--trust-proxy",
        action="store_true",
        default=bool(_env_flag("SFU_TRUST_PROXY")),
        help="behind a reverse proxy: the client is the right-most X-Forwarded-For address "
        "(SFU_TRUST_PROXY=1)",
    )
    auth = parser.add_argument_group(
        "authorization (see signaling/security/auth.py for the token format)"
    )
    auth.add_argument(
        "--auth-token",
        action=ReplacingAppend,
        default=_env_list("SFU_AUTH_TOKENS") or None,
        help="a static bearer token allowing everything; repeatable "
        "(SFU_AUTH_TOKENS, comma-separated)",
    )
    auth.add_argument(
        "--auth-secret",
        default=env("SFU_AUTH_SECRET"),
        help="HMAC secret of signed per-stream tokens (SFU_AUTH_SECRET)",
    )
    auth.add_argument(
        "--auth-stats",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("SFU_AUTH_STATS"),
        help="require a token for the stats API too; on by default whenever a token or "
        "secret is set (SFU_AUTH_STATS=1 or 0)",
    )
    parser.add_argument(
        "--hook-url",
        default=env("SFU_HOOK_URL"),
        help="http(s) URL asked before every publish and play (SFU_HOOK_URL)",
    )
    relay = parser.add_argument_group("STUN/TURN servers offered to clients (Link headers)")
    relay.add_argument(
        "--ice-server",
        action=ReplacingAppend,
        default=_env_list("SFU_ICE_SERVER") or None,
        help='a stun:, turn: or turns: URI sent as Link: rel="ice-server"; repeatable '
        "(SFU_ICE_SERVER, comma-separated)",
    )
    relay.add_argument(
        "--ice-server-username",
        default=env("SFU_ICE_SERVER_USERNAME"),
        help="static TURN username (SFU_ICE_SERVER_USERNAME)",
    )
    relay.add_argument(
        "--ice-server-credential",
        default=env("SFU_ICE_SERVER_CREDENTIAL"),
        help="static TURN password (SFU_ICE_SERVER_CREDENTIAL)",
    )
    relay.add_argument(
        "--turn-secret",
        default=env("SFU_TURN_SECRET"),
        help="secret shared with the TURN server (coturn use-auth-secret): short-lived "
        "credentials per answer (SFU_TURN_SECRET)",
    )
    ops = parser.add_argument_group("operation")
    ops.add_argument(
        "--config",
        default=env("SFU_CONFIG"),
        help="a TOML file of settings named like the flags; flags and SFU_* variables win "
        "(SFU_CONFIG; see litesfu.example.toml)",
    )
    ops.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings (secrets masked) and exit",
    )
    ops.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=env("SFU_LOG_FORMAT", "text"),
        help="json: one object per line (SFU_LOG_FORMAT, default text)",
    )
    ops.add_argument(
        "--metrics-per-stream",
        type=_count,
        default=env("SFU_METRICS_PER_STREAM", "0"),
        help=f"label /metrics by stream name for this many streams, at most {MAX_PER_STREAM} "
        "(SFU_METRICS_PER_STREAM, default 0)",
    )
    ops.add_argument(
        "--max-event-streams",
        type=_positive,
        default=env("SFU_MAX_EVENT_STREAMS", "200"),
        help="open server-sent event streams; more get 503 (SFU_MAX_EVENT_STREAMS, default 200)",
    )
    return parser


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of clustering on Redis; none of them matters without --redis-url."""
    env = os.environ.get
    group = parser.add_argument_group("cluster (on with --redis-url)")
    group.add_argument(
        "--redis-url",
        default=env("SFU_REDIS_URL"),
        help="redis://host:port/db of the cluster's registry; turns clustering on (SFU_REDIS_URL)",
    )
    group.add_argument(
        "--redis-prefix",
        default=env("SFU_REDIS_PREFIX", "litesfu:"),
        help="prefix of every key this cluster keeps in Redis (SFU_REDIS_PREFIX)",
    )
    group.add_argument(
        "--node-name",
        default=env("SFU_NODE_NAME"),
        help="this node's name in the cluster (SFU_NODE_NAME, default hostname-httpport)",
    )
    group.add_argument(
        "--public-url",
        default=env("SFU_PUBLIC_URL"),
        help="base URL clients and other nodes reach this node's HTTP at "
        "(SFU_PUBLIC_URL, default http://http-host:http-port)",
    )
    group.add_argument(
        "--relay-host",
        default=env("SFU_RELAY_HOST"),
        help="IPv4 address other nodes send relayed media to, and relays leave from "
        "(SFU_RELAY_HOST, default the first --candidate)",
    )
    group.add_argument(
        "--cluster-secret",
        default=env("SFU_CLUSTER_SECRET"),
        help="shared by every node (16 characters or more): seals node-to-node requests and "
        "the relays' SRTP keys (SFU_CLUSTER_SECRET)",
    )
    group.add_argument(
        "--cluster-redirect",
        action="store_true",
        default=bool(_env_flag("SFU_CLUSTER_REDIRECT")),
        help="answer 307 to the owning (or, when draining, another) node instead of 409 or 503 "
        "(SFU_CLUSTER_REDIRECT=1)",
    )
    group.add_argument(
        "--drain-timeout",
        type=float,
        default=float(env("SFU_DRAIN_TIMEOUT", "30")),
        help="seconds SIGTERM lets a cluster node's sessions finish before it leaves "
        "(SFU_DRAIN_TIMEOUT, default 30)",
    )


def check_cluster_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.redis_url:
        return
    if not args.redis_url.startswith(("redis://", "rediss://", "unix://")):
        parser.error("--redis-url must be a redis://, rediss:// or unix:// URL")
    if not args.cluster_secret or len(args.cluster_secret) < 16:
        parser.error("--redis-url needs --cluster-secret of 16 characters or more")
    if args.workers != 1:
        parser.error("--redis-url runs one media process per node; use one node per core")
    host = args.http_host if args.http_host not in ("", "0.0.0.0", "::") else platform.node()
    args.node_name = args.node_name or f"{platform.node()}-{args.http_port}"
    args.public_url = args.public_url or f"http://{host}:{args.http_port}"
    args.relay_host = args.relay_host or args.candidate[0]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = settings.parse(build_parser, argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    given = args.candidate
    try:
        args.candidate, args.stun_servers = split_stun(args.candidate or [])
    except ValueError as exc:
        parser.error(f"--candidate: {exc}")
    if args.candidate_from_host not in MODES:  # argparse checks flags, not SFU_* defaults
        parser.error(f"--candidate-from-host must be one of {', '.join(MODES)}")
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
    if args.hook_url and not args.hook_url.startswith(("http://", "https://")):
        parser.error("--hook-url must be an http:// or https:// URL")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    check_cluster_args(parser, args)
    check_egress_args(parser, args)
    if args.print_config:
        shown = argparse.Namespace(**{**vars(args), "candidate": given or args.candidate})
        print(settings.render(parser, shown), end="")
        raise SystemExit(0)
    return args
