"""ICE-lite agent: success, every error path, nomination, restart, and aioice interop."""

from __future__ import annotations

import struct

import pytest
from aioice import stun as aioice_stun

from sfu.protocol import ice
from sfu.protocol.ice import BindingOutcome, IceLite
from sfu.wire import stun

SERVER_UFRAG = "srvUfrag"
SERVER_PWD = "serverPasswordOf24Chars+"
CLIENT_UFRAG = "cli1"
CLIENT_PWD = "clientPasswordOf24Chars/"
USERNAME = f"{SERVER_UFRAG}:{CLIENT_UFRAG}"
ADDR = ("192.0.2.7", 54321)
TID = bytes(range(12))


def make_agent() -> IceLite:
    return IceLite(SERVER_UFRAG, SERVER_PWD, CLIENT_UFRAG, CLIENT_PWD)


def request(
    *,
    username: str = USERNAME,
    pwd: str = SERVER_PWD,
    controlling: bool = True,
    use_candidate: bool = False,
) -> bytes:
    return ice.binding_request(
        TID,
        username,
        pwd,
        controlling=controlling,
        tie_breaker=0x0123456789ABCDEF,
        priority=0x6E0001FF,
        use_candidate=use_candidate,
    )


def handle(agent: IceLite, data: bytes, addr: tuple[str, int] = ADDR) -> BindingOutcome:
    return agent.handle(data, stun.parse(data), addr)


def error_of(outcome: BindingOutcome) -> tuple[int, str]:
    assert outcome.response is not None
    msg = stun.parse(outcome.response)
    assert msg.msg_type == stun.BINDING_ERROR
    assert msg.transaction_id == TID
    assert stun.verify_fingerprint(outcome.response, msg)
    value = msg.get(stun.ERROR_CODE)
    assert value is not None
    return stun.decode_error_code(value)


def assert_unsigned_error(outcome: BindingOutcome, code: int) -> None:
    assert outcome == BindingOutcome(outcome.response, False, False, code)
    assert error_of(outcome)[0] == code
    assert outcome.response is not None
    assert stun.parse(outcome.response).integrity_offset is None


# --- credentials ---------------------------------------------------------------------


def test_new_credentials_are_ice_chars_of_the_right_length() -> None:
    ufrags = {ice.new_ufrag() for _ in range(50)}
    pwds = {ice.new_pwd() for _ in range(50)}
    assert len(ufrags) == 50
    assert len(pwds) == 50
    assert all(len(u) == 8 and set(u) <= set(ice.ICE_CHARS) for u in ufrags)
    assert all(len(p) == 24 and set(p) <= set(ice.ICE_CHARS) for p in pwds)


def test_split_username() -> None:
    msg = stun.parse(request())
    assert ice.split_username(msg) == (SERVER_UFRAG, CLIENT_UFRAG)
    # Split at the first colon only.
    msg = stun.parse(request(username="a:b:c"))
    assert ice.split_username(msg) == ("a", "b:c")
    no_colon = stun.encode(stun.BINDING_REQUEST, TID, [(stun.USERNAME, b"abc")])
    assert ice.split_username(stun.parse(no_colon)) is None
    not_utf8 = stun.encode(stun.BINDING_REQUEST, TID, [(stun.USERNAME, b"\xff:\xfe")])
    assert ice.split_username(stun.parse(not_utf8)) is None
    absent = stun.encode(stun.BINDING_REQUEST, TID, [])
    assert ice.split_username(stun.parse(absent)) is None


# --- success -------------------------------------------------------------------------


@pytest.mark.parametrize("addr", [ADDR, ("2001:db8::5", 40000)])
def test_success_carries_the_mapped_address(addr: tuple[str, int]) -> None:
    outcome = handle(make_agent(), request(), addr)
    assert outcome.authenticated
    assert outcome.error_code is None
    assert not outcome.use_candidate
    assert outcome.response is not None
    assert ice.parse_binding_success(outcome.response, TID, SERVER_PWD) == addr
    msg = stun.parse(outcome.response)
    assert msg.msg_type == stun.BINDING_SUCCESS
    assert stun.verify_integrity(outcome.response, msg, SERVER_PWD.encode())
    assert stun.verify_fingerprint(outcome.response, msg)


def test_use_candidate_is_reported() -> None:
    outcome = handle(make_agent(), request(use_candidate=True))
    assert outcome.authenticated
    assert outcome.use_candidate
    assert outcome.error_code is None


def test_non_requests_are_ignored() -> None:
    agent = make_agent()
    ignored = BindingOutcome(None, False, False, None)
    indication = stun.encode(stun.BINDING_INDICATION, TID, [])
    assert handle(agent, indication) == ignored
    success = handle(agent, request()).response
    assert success is not None
    assert handle(agent, success) == ignored


# --- errors --------------------------------------------------------------------------


def test_missing_fingerprint_gets_no_answer() -> None:
    data = stun.encode(
        stun.BINDING_REQUEST,
        TID,
        [(stun.USERNAME, USERNAME.encode())],
        integrity_key=SERVER_PWD.encode(),
        fingerprint=False,
    )
    assert handle(make_agent(), data) == ice.IGNORED


def test_wrong_fingerprint_gets_no_answer() -> None:
    data = bytearray(request())
    data[-1] ^= 0x01
    assert handle(make_agent(), bytes(data)) == ice.IGNORED


def test_missing_username_gets_no_answer() -> None:
    data = stun.encode(stun.BINDING_REQUEST, TID, [], integrity_key=SERVER_PWD.encode())
    assert handle(make_agent(), data) == ice.IGNORED


def test_missing_integrity_is_400() -> None:
    data = stun.encode(stun.BINDING_REQUEST, TID, [(stun.USERNAME, USERNAME.encode())])
    assert_unsigned_error(handle(make_agent(), data), 400)


@pytest.mark.parametrize(
    "username", [f"{SERVER_UFRAG}:other", f"other:{CLIENT_UFRAG}", SERVER_UFRAG]
)
def test_wrong_ufrag_is_401(username: str) -> None:
    outcome = handle(make_agent(), request(username=username))
    assert_unsigned_error(outcome, 401)
    assert error_of(outcome)[1] == "Unauthorized"


def test_wrong_password_is_401() -> None:
    assert_unsigned_error(handle(make_agent(), request(pwd=CLIENT_PWD)), 401)


def test_ice_controlled_is_487_and_signed() -> None:
    outcome = handle(make_agent(), request(controlling=False))
    assert outcome.error_code == 487
    assert outcome.authenticated
    assert not outcome.use_candidate
    assert error_of(outcome) == (487, "Role Conflict")
    assert outcome.response is not None
    msg = stun.parse(outcome.response)
    assert stun.verify_integrity(outcome.response, msg, SERVER_PWD.encode())
    with pytest.raises(stun.StunError, match="487"):
        ice.parse_binding_success(outcome.response, TID, SERVER_PWD)


def test_error_response_is_stateless_and_unsigned() -> None:
    msg = stun.parse(request())
    data = ice.error_response(msg, 401, "Unauthorized")
    parsed = stun.parse(data)
    assert parsed.msg_type == stun.BINDING_ERROR
    assert parsed.transaction_id == TID
    assert parsed.integrity_offset is None
    assert stun.verify_fingerprint(data, parsed)
    value = parsed.get(stun.ERROR_CODE)
    assert value is not None
    assert stun.decode_error_code(value) == (401, "Unauthorized")


# --- restart -------------------------------------------------------------------------


def test_restart_replaces_credentials() -> None:
    agent = make_agent()
    agent.restart("newUfrag", "newServerPasswordOf24Chr", "cli2", "newClientPasswordOf24Chr")
    assert (agent.local_ufrag, agent.remote_ufrag) == ("newUfrag", "cli2")
    assert handle(agent, request()).error_code == 401
    # New ufrags but the old password still fail.
    assert handle(agent, request(username="newUfrag:cli2")).error_code == 401
    outcome = handle(agent, request(username="newUfrag:cli2", pwd="newServerPasswordOf24Chr"))
    assert outcome.authenticated
    assert outcome.error_code is None


# --- client side ---------------------------------------------------------------------


def test_binding_request_contents() -> None:
    data = request(use_candidate=True)
    msg = stun.parse(data)
    assert msg.msg_type == stun.BINDING_REQUEST
    assert msg.get(stun.USERNAME) == USERNAME.encode()
    assert msg.get(stun.PRIORITY) == struct.pack("!I", 0x6E0001FF)
    assert msg.get(stun.ICE_CONTROLLING) == struct.pack("!Q", 0x0123456789ABCDEF)
    assert msg.get(stun.ICE_CONTROLLED) is None
    assert msg.get(stun.USE_CANDIDATE) == b""
    assert stun.verify_integrity(data, msg, SERVER_PWD.encode())
    assert stun.verify_fingerprint(data, msg)


def test_parse_binding_success_rejects() -> None:
    response = handle(make_agent(), request()).response
    assert response is not None
    with pytest.raises(stun.StunError, match="transaction"):
        ice.parse_binding_success(response, bytes(12), SERVER_PWD)
    with pytest.raises(stun.StunError, match="MESSAGE-INTEGRITY"):
        ice.parse_binding_success(response, TID, "wrong")
    broken = bytearray(response)
    broken[-1] ^= 0x01
    with pytest.raises(stun.StunError, match="FINGERPRINT"):
        ice.parse_binding_success(bytes(broken), TID, SERVER_PWD)
    with pytest.raises(stun.StunError, match="not a binding success"):
        ice.parse_binding_success(request(), TID, SERVER_PWD)
    no_address = stun.encode(stun.BINDING_SUCCESS, TID, [], integrity_key=SERVER_PWD.encode())
    with pytest.raises(stun.StunError, match="XOR-MAPPED-ADDRESS"):
        ice.parse_binding_success(no_address, TID, SERVER_PWD)
    with pytest.raises(stun.StunError):
        ice.parse_binding_success(b"\x00garbage", TID, SERVER_PWD)


# --- interop with aioice (aiortc's ICE agent) ----------------------------------------


def aioice_request(*, use_candidate: bool) -> bytes:
    msg = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
        transaction_id=TID,
    )
    msg.attributes["USERNAME"] = USERNAME
    msg.attributes["PRIORITY"] = 1853824767
    msg.attributes["ICE-CONTROLLING"] = 0x1122334455667788
    if use_candidate:
        msg.attributes["USE-CANDIDATE"] = None
    msg.add_message_integrity(SERVER_PWD.encode())
    msg.add_fingerprint()
    return bytes(msg)


@pytest.mark.parametrize("use_candidate", [False, True])
def test_aioice_request_is_accepted_and_answer_is_understood(use_candidate: bool) -> None:
    outcome = handle(make_agent(), aioice_request(use_candidate=use_candidate))
    assert outcome.authenticated
    assert outcome.error_code is None
    assert outcome.use_candidate is use_candidate
    assert outcome.response is not None
    # aioice parses our answer, checks its FINGERPRINT and MESSAGE-INTEGRITY.
    answer = aioice_stun.parse_message(outcome.response)
    assert answer.message_method == aioice_stun.Method.BINDING
    assert answer.message_class == aioice_stun.Class.RESPONSE
    assert answer.transaction_id == TID
    assert answer.check_message_integrity(SERVER_PWD.encode())
    assert answer.attributes["XOR-MAPPED-ADDRESS"] == ADDR


def test_aioice_understands_our_errors() -> None:
    outcome = handle(make_agent(), request(controlling=False))
    assert outcome.response is not None
    answer = aioice_stun.parse_message(outcome.response)
    assert answer.message_class == aioice_stun.Class.ERROR
    assert answer.attributes["ERROR-CODE"] == (487, "Role Conflict")
    assert answer.check_message_integrity(SERVER_PWD.encode())
