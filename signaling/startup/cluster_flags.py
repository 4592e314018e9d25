"""The flags of clustering on Redis (signaling/cluster): none of them matters without
--redis-url, and those it needs default from the others once parsed."""

from __future__ import annotations

import argparse
import platform

from signaling.startup.declare import flag
from signaling.startup.values import http_url, ipv4, node_name, redis_url, seconds, text


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of clustering on Redis; none of them matters without --redis-url."""
    group = parser.add_argument_group("cluster (on with --redis-url)")
    flag(
        group,
        "--redis-url",
        redis_url,
        None,
        "redis://host:port/db of the cluster's registry; turns clustering on",
    )
    flag(
        group, "--redis-prefix", text, "litesfu:", "prefix of every key this cluster keeps in Redis"
    )
    flag(
        group,
        "--node-name",
        node_name,
        None,
        "this node's name in the cluster",
        shown="hostname-httpport",
    )
    flag(
        group,
        "--public-url",
        http_url,
        None,
        "base URL clients and other nodes reach this node's HTTP at",
        shown="http://http-host:http-port",
    )
    flag(
        group,
        "--relay-host",
        ipv4,
        None,
        "IPv4 address other nodes send relayed media to, and relays leave from",
        shown="the first --candidate",
    )
    flag(
        group,
        "--cluster-secret",
        text,
        None,
        "shared by every node (16 characters or more): seals node-to-node requests and "
        "the relays' SRTP keys",
    )
    flag(
        group,
        "--cluster-redirect",
        None,
        None,
        "answer 307 to the owning (or, when draining, another) node instead of 409 or 503",
        shown="off",
        action="store_true",
    )
    flag(group, "--drain-timeout", seconds, "30",
         "seconds SIGTERM lets a cluster node's sessions finish before it leaves")  # fmt: skip


def check_cluster_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.redis_url:
        return
    if not args.cluster_secret or len(args.cluster_secret) < 16:
        parser.error("--redis-url needs --cluster-secret of 16 characters or more")
    if args.workers != 1:
        parser.error("--redis-url runs one media process per node; use one node per core")
    host = args.http_host if args.http_host not in ("", "0.0.0.0", "::") else platform.node()
    args.node_name = args.node_name or f"{platform.node()}-{args.http_port}"
    args.public_url = args.public_url or f"http://{host}:{args.http_port}"
    args.relay_host = args.relay_host or args.candidate[0]
