"""WHIP and WHEP: create a session from an offer, then end it, trickle to it, pick its layer.

Handlers turn HTTP into calls on the router and the router's answers into HTTP; every failure a
client can cause is a Rejection, never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web
from multidict import CIMultiDict

from sfu.media import PeerParams
from sfu.protocol.simulcast import AUTO, Choice
from sfu.routing.router import PLAY, PUBLISH, RoomFull, StreamBusy
from sfu.session.peer import PeerSession
from signaling.http.routes import ice_server_links
from signaling.http.state import (
    ADMISSION,
    AUTO_CANDIDATES,
    CANDIDATES,
    CLUSTER,
    ETAGS,
    HOOKS,
    HOST_CANDIDATE,
    HOST_NAMES,
    LIMITS,
    MEDIA_SERVER,
)
from signaling.observe.events import whep_link
from signaling.sdp.answer import ServerCandidate, render_answer
from signaling.sdp.candidates import MAX_CANDIDATES, for_request, usable
from signaling.sdp.host_name import NAME, OFF, host_name
from signaling.sdp.layer_request import (
    MAX_LAYER_BODY,
    SVC_FIELDS,
    LayerRequestError,
    layer_link,
    parse_layer_request,
    rid_choice,
)
from signaling.sdp.negotiate import (
    NegotiationError,
    UnsupportedMedia,
    negotiate_play,
    negotiate_publish,
)
from signaling.sdp.parse import MAX_MEDIA_SECTIONS, Offer, SdpError, parse_offer
from signaling.sdp.trickle import FragmentError, parse_sdpfrag, render_restart
from signaling.security.hooks import HookRejected, HookUnavailable
from signaling.serving.access import OWNERS, authorize, check_owner, request_token
from signaling.serving.media_types import JSON_TYPE, SDP_TYPE, SDPFRAG_TYPE
from signaling.serving.plumbing import (
    ROOM_REFUSED,
    Rejection,
    read_body,
    read_bytes,
    unavailable,
)
from signaling.serving.redact import short_hash

log = logging.getLogger(__name__)


def answer_candidates(request: web.Request) -> list[ServerCandidate]:
    """The candidates of one answer or restart: the server-reflexive addresses learnt from
    STUN servers first (on a VM behind 1:1 NAT they are the ones that work), then the host
    ones, (address, UDP port), but for an address a reflexive one already names."""
    media = request.app[MEDIA_SERVER]
    addresses = for_request(
        request.app[CANDIDATES],
        request.headers.get("Host"),  # a --workers front passes on the client's
        request.app[AUTO_CANDIDATES],
        ipv6=media.endpoint.ipv6,
    )
    lead = host_lead(request)
    addresses = [*lead, *(a for a in addresses if a not in lead)]
    reflexive = media.reflexive_candidates()
    named = {candidate[0] for candidate in reflexive}
    port = media.endpoint.port
    hosts = [(address, port) for address in addresses if address not in named]
    return [*reflexive, *hosts][:MAX_CANDIDATES]


def host_lead(request: web.Request) -> list[str]:
    """What --candidate-from-host puts first: the Host name's addresses (resolved before the
    handler ran) or the name itself; nothing when it is off or the Host names no domain."""
    mode = request.app[HOST_CANDIDATE]
    name = host_name(request.headers.get("Host")) if mode != OFF else None
    if name is None:
        return []
    if mode == NAME:
        return [name]
    ipv6 = request.app[MEDIA_SERVER].endpoint.ipv6
    return [a for a in request.app[HOST_NAMES].addresses(name) if usable(a, ipv6)]


def check_limits(request: web.Request, role: str, stream: str) -> None:
    refusal = request.app[LIMITS].refusal(request.app[MEDIA_SERVER].router, role, stream)
    if refusal is not None:
        raise unavailable(refusal)


def admit_client(request: web.Request) -> None:
    """Before any offer is read: the client's own creation rate and half-open sessions (429)."""
    router = request.app[MEDIA_SERVER].router
    refusal = request.app[ADMISSION].check(request.remote or "", router.session_state)
    if refusal is not None:
        raise Rejection(429, refusal.reason, {"Retry-After": str(refusal.retry_after)})


async def ask_hook(request: web.Request, role: str, stream: str, token: str | None) -> None:
    try:
        await request.app[HOOKS].check(f"on_{role}", stream, request.remote, token)
    except HookRejected as exc:
        raise Rejection(403, f"refused by hook: {exc}") from exc
    except HookUnavailable as exc:
        raise unavailable(str(exc)) from exc


def negotiated(
    offer_text: str,
    negotiate: Callable[[Offer], PeerParams],
    max_media: int = MAX_MEDIA_SECTIONS,
) -> tuple[Offer, PeerParams]:
    """The parsed offer (of at most `max_media` m-lines) and what `negotiate` makes of it; a
    bad offer is a 400, media the server cannot carry a 422."""
    try:
        offer = parse_offer(offer_text, max_media)
        return offer, negotiate(offer)
    except UnsupportedMedia as exc:
        raise Rejection(422, str(exc)) from exc
    except (SdpError, NegotiationError) as exc:
        raise Rejection(400, str(exc)) from exc


def remember_owner(request: web.Request, session: PeerSession, token: str | None) -> None:
    """Keep the creating token's digest (only it may end or change the session) and count the
    new session as the client's half-open one."""
    router = request.app[MEDIA_SERVER].router
    owners = request.app[OWNERS]
    owners.prune(
        lambda session_id: (
            router.session_info(session_id) is not None
            or router.ended_session(session_id) is not None
        )
    )
    owners.remember(session.id, token)
    request.app[ADMISSION].created(request.remote or "", session.id)


def session_answer(
    request: web.Request,
    offer: Offer,
    peer: PeerParams,
    session: PeerSession,
    direction: str,
    stream_id: str,
) -> str:
    """The answer SDP of a new or renegotiated session; a sending one names its ssrcs."""
    media = request.app[MEDIA_SERVER]
    ssrcs = session.handler.ssrcs() if direction == "sendonly" else None  # type: ignore[union-attr]
    return render_answer(
        offer,
        peer,
        direction=direction,
        ice_ufrag=session.ice.local_ufrag,
        ice_pwd=session.ice.local_pwd,
        fingerprint=media.certificate.fingerprint,
        candidates=answer_candidates(request),
        tcp_ports=media.tcp_ports,
        ssrcs=ssrcs,
        stream_id=stream_id,
        max_message_size=media.router.config.data_max_message_size,
    )


def created_headers(request: web.Request, session_id: str, location: str) -> CIMultiDict[str]:
    """Location and a first ETag for a 201; the tags of ended sessions are dropped first."""
    etags = request.app[ETAGS]
    etags.prune(request.app[MEDIA_SERVER].router.session_ids())
    return CIMultiDict([("Location", location), ("ETag", etags.renew(session_id))])


async def start_session(
    request: web.Request, role: str, stream: str, offer_text: str, token: str | None
) -> tuple[PeerSession, str]:
    """Negotiate, pass limits and the hook, create the session and render the answer.

    The caller admitted the client and checked the limits before reading the offer. Nothing is
    created until every check has passed; limits are checked again after the hook because
    other offers may have filled the server while it was being asked.
    """
    router = request.app[MEDIA_SERVER].router
    if role == PUBLISH:
        offer, peer = negotiated(offer_text, negotiate_publish)
    else:
        preferred = router.preferred_codecs(stream)
        offer, peer = negotiated(offer_text, lambda o: negotiate_play(o, preferred))
    await ask_hook(request, role, stream, token)
    check_limits(request, role, stream)
    now = time.monotonic()
    try:
        session = (
            router.publish(stream, peer, now) if role == PUBLISH else router.play(stream, peer, now)
        )
    except StreamBusy as exc:
        raise Rejection(409, str(exc)) from exc
    except RoomFull as exc:
        request.app[ROOM_REFUSED]["publish 403"] += 1
        raise Rejection(403, str(exc)) from exc
    remember_owner(request, session, token)
    direction = "recvonly" if role == PUBLISH else "sendonly"
    answer = session_answer(request, offer, peer, session, direction, stream.replace("/", "-"))
    log.info(
        "%s %s: session #%s from %s (%s)",
        role,
        stream,
        short_hash(session.id),
        request.remote,
        ", ".join(f"{t.kind} {t.codecs[0].name}" for t in peer.tracks),
    )
    return session, answer


async def admit_cluster(request: web.Request, role: str, stream: str) -> None:
    """In a cluster: claim the stream of a publish, set up the relay a play needs (or refuse)."""
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        await cluster.admit(request, role, stream)


async def whip_or_whep(request: web.Request, role: str, stream: str) -> web.Response:
    token = request_token(request)
    authorize(request, token, stream, role)
    admit_client(request)
    check_limits(request, role, stream)
    await admit_cluster(request, role, stream)
    choice = first_layer_choice(request, stream) if role == PLAY else None
    offer = await read_body(request, SDP_TYPE, "offer")
    session, answer = await start_session(request, role, stream, offer, token)
    router = request.app[MEDIA_SERVER].router
    location = f"/sessions/{session.id}"
    headers = created_headers(request, session.id, location)
    if role == PLAY:
        headers.add("Link", f"{whep_link(stream)}, {layer_link(location)}")
        if choice is not None:
            router.set_layer(session.id, None, choice, time.monotonic())
    headers.extend(ice_server_links(request))
    return web.Response(status=201, body=answer.encode(), content_type=SDP_TYPE, headers=headers)


def first_layer_choice(request: web.Request, stream: str) -> Choice | None:
    """The `?layer=` of a WHEP POST, checked against the live publisher's layers if any."""
    rid = request.query.get("layer")
    if rid is None:
        return None
    try:
        choice = rid_choice(rid)
    except LayerRequestError as exc:
        raise Rejection(400, str(exc)) from exc
    known = request.app[MEDIA_SERVER].router.layer_rids(stream)
    if choice.rid is not None and known is not None and choice.rid not in known:
        raise Rejection(400, f"the stream sends no layer with rid {choice.rid!r}")
    return choice


async def set_layer(request: web.Request) -> web.Response:
    """The WHEP layer extension: pin a rid, cap the size, pin or cap SVC layers, or "auto"
    -> 200."""
    session = session_for(request)
    if request.content_type != JSON_TYPE:
        raise Rejection(415, f"Content-Type must be {JSON_TYPE}, not {request.content_type}")
    if request.content_length is not None and request.content_length > MAX_LAYER_BODY:
        raise Rejection(413, f"layer request larger than {MAX_LAYER_BODY} bytes")
    try:
        mid, choice = parse_layer_request(await read_bytes(request, "layer request"))
        request.app[MEDIA_SERVER].router.set_layer(session.id, mid, choice, time.monotonic())
    except LayerRequestError as exc:
        raise Rejection(400, str(exc)) from exc
    except KeyError as exc:
        raise Rejection(400, "layers are chosen by playing (WHEP) sessions only") from exc
    except LookupError as exc:
        raise Rejection(400, str(exc)) from exc
    svc = {key: getattr(choice, name) for key, name in SVC_FIELDS.items()}
    answer = {"mediaId": mid, "rid": choice.rid or AUTO}
    return web.json_response(answer | {k: v for k, v in svc.items() if v is not None})


async def whip(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PUBLISH, request.match_info["stream"])


async def whep(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PLAY, request.match_info["stream"])


def session_for(request: web.Request) -> PeerSession:
    """The live session a /sessions/{id} URL names, if the request may act on it."""
    session_id = request.match_info["id"]
    session = request.app[MEDIA_SERVER].router.live_session(session_id)
    if session is None:
        raise Rejection(404, "no such session")
    check_owner(request, session_id)
    return session


def already_ended(request: web.Request) -> web.Response | None:
    """The 200 a DELETE gets when the peer's DTLS close or a timeout got there first (the
    client's intent is met); None while the session lives."""
    ended = request.app[MEDIA_SERVER].router.ended_session(request.match_info["id"])
    if ended is None:
        return None
    check_owner(request, request.match_info["id"])
    return web.Response(status=200, text=f"session already ended: {ended.reason}\n")


async def delete_session(request: web.Request) -> web.Response:
    answer = already_ended(request)
    if answer is not None:
        return answer
    session = session_for(request)
    request.app[MEDIA_SERVER].router.close(session.id, "DELETE by client", time.monotonic())
    request.app[ETAGS].forget(session.id)
    return web.Response(status=200, text="session ended\n")


async def patch_session(request: web.Request) -> web.Response:
    """RFC 9725 §4.3: trickled candidates -> 204; new ice-ufrag/pwd -> ICE restart, 200."""
    session = session_for(request)
    if request.content_type != SDPFRAG_TYPE:
        raise Rejection(415, f"Content-Type must be {SDPFRAG_TYPE}, not {request.content_type}")
    # Trickle needs no If-Match (several clients never keep the ETag); one that is sent must
    # match, and an ICE restart, which changes the session, must send one.
    if_match = request.headers.get("If-Match")
    etags = request.app[ETAGS]
    if if_match is not None and not etags.matches(session.id, if_match):
        raise Rejection(412, "If-Match does not match the session's current ETag")
    try:
        fragment = parse_sdpfrag(await read_body(request, SDPFRAG_TYPE, "fragment"))
    except FragmentError as exc:
        raise Rejection(400, str(exc)) from exc
    if fragment.ufrag is None or fragment.ufrag == session.ice.remote_ufrag:
        return web.Response(status=204)  # an ICE-lite server has no use for client candidates
    if if_match is None:
        raise Rejection(428, 'an ICE restart needs If-Match (the ETag, or "*")')
    if fragment.pwd is None:
        raise Rejection(400, "an ICE restart needs a=ice-pwd with the new a=ice-ufrag")
    media = request.app[MEDIA_SERVER]
    restarted = media.router.restart_ice(session.id, fragment.ufrag, fragment.pwd)
    if restarted is None:
        raise Rejection(404, "no such session")
    first = restarted.peer.tracks[0]
    body = render_restart(
        restarted.ice.local_ufrag,
        restarted.ice.local_pwd,
        first.kind,
        first.mid,
        answer_candidates(request),
        media.tcp_ports,
    )
    log.info("session #%s: ICE restart over HTTP from %s", short_hash(session.id), request.remote)
    return web.Response(
        status=200,
        body=body.encode(),
        content_type=SDPFRAG_TYPE,
        headers={"ETag": etags.renew(session.id)},
    )
