"""Start-up: every flag documented with its default, and every bad value refused in one line.

Each family of flag (ports, counts, durations, rates, names, addresses, URLs, files, switches,
repeatable lists) gets a bad value by flag, by SFU_* variable and, where it differs, by the
config file; the answer is `litesfu: --flag: reason` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno

import pytest

from signaling.serving.binding import bind_failure
from signaling.startup.flags import build_parser, parse_args

KEEP_CLEAN = ("SFU_UDP_PORT", "SFU_CANDIDATE", "SFU_TRUST_PROXY", "SFU_LOG_LEVEL", "SFU_WEB_ROOT")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEEP_CLEAN:
        monkeypatch.delenv(name, raising=False)


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a refused start prints, after checking its status is 2."""
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("litesfu: "), err
    assert len(err) < 400, "a long value is cut"
    return err.strip()


def test_every_flag_has_one_line_of_help_with_its_default() -> None:
    parser = build_parser()
    flags = [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]
    assert len(flags) > 40
    for action in flags:
        if action.dest == "help":
            continue
        name = action.option_strings[0]
        assert action.help and "\n" not in action.help, name
        assert "default" in action.help, f"{name} does not show its default"
        if action.dest != "print_config":
            assert "SFU_" in action.help, f"{name} does not name its variable"


def test_every_flag_that_takes_a_value_checks_it() -> None:
    for action in build_parser()._actions:
        if action.nargs == 0 or not action.option_strings or action.dest == "help":
            continue
        assert action.type is not None or action.choices, action.option_strings[0]


def test_the_issues_example_reads_as_asked(capsys) -> None:
    line = refusal(["--udp-port", "99999"], capsys)
    assert line == "litesfu: --udp-port: 99999 is not a port (0-65535)"


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--udp-port", "-1"], "--udp-port: -1 is not a port (0-65535)"),
        (["--http-port", "http"], "--http-port: http is not a port"),
        (["--tcp-port", "70000"], "--tcp-port: 70000 is not a port"),
        (["--max-sessions", "-5"], "--max-sessions: -5 is not a count (0 or more)"),
        (["--workers", "0"], "--workers: 0 is not a count (1 or more)"),
        (["--metrics-per-stream", "101"], "--metrics-per-stream: 101 is not a count (0-100)"),
        (["--session-timeout", "0"], "--session-timeout: 0 is not a number of seconds above 0"),
        (["--header-timeout", "inf"], "--header-timeout: inf is not a number of seconds"),
        (["--drain-timeout", "soon"], "--drain-timeout: soon is not a number of seconds"),
        (["--client-rate", "nan"], "--client-rate: nan is not a rate above 0"),
        (["--log-level", "verbose"], "--log-level: verbose is not a log level (debug, info,"),
        (["--log-format", "xml"], "--log-format: invalid choice: 'xml'"),
        (["--candidate", "not-an-ip"], "--candidate: not-an-ip is not an IP address, 'auto'"),
        (["--candidate", "a b"], "--candidate: 'a b' is not an IP address"),
        (["--candidate", "auto", "--candidate", "10.0.0.1"], "--candidate auto stands alone"),
        (["--udp-host", "nowhere.invalid"], "--udp-host: nowhere.invalid is not an IP address"),
        (["--http-host", "bad host"], "--http-host: 'bad host' is not an IP address"),
        (["--relay-host", "::1"], "--relay-host: ::1 is not an IPv4 address"),
        (["--hook-url", "ftp://x"], "--hook-url: ftp://x is not an http:// or https:// URL"),
        (["--public-url", "http://"], "--public-url: http:// is not an http://"),
        (["--redis-url", "http://x"], "--redis-url: http://x must be a redis://"),
        (["--node-name", "a/b"], "--node-name: a/b is not 1-64 of"),
        (["--web-root", "/no/such/dir"], "--web-root: /no/such/dir is not a directory"),
        (["--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"], "--tls-cert: /no/cert.pem"),
        (["--tls-cert", __file__], "--tls-cert and --tls-key go together"),
        (["--auth-token", "x" * 2000], "--auth-token: xxxxxxxx"),
        (["--auth-secret", ""], "--auth-secret: '' is not 1 to 1024 printable characters"),
        (["--ice-server", "http://x"], "ice-server"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_refused_in_one_line(argv, reason, capsys) -> None:
    assert reason in refusal(argv, capsys)


def test_a_certificate_that_does_not_load_is_refused_before_binding(tmp_path, capsys) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    line = refusal(["--tls-cert", str(junk), "--tls-key", str(junk)], capsys)
    assert line.startswith("litesfu: --tls-cert/--tls-key: ")


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SFU_UDP_PORT", "99999", "--udp-port: 99999 is not a port"),
        ("SFU_LOG_LEVEL", "loud", "--log-level: loud is not a log level"),
        ("SFU_CANDIDATE", "10.0.0.1,not-an-ip", "--candidate: not-an-ip is not an IP address"),
        ("SFU_TRUST_PROXY", "maybe", "SFU_TRUST_PROXY: 'maybe' is not one of 1, true"),
        ("SFU_WEB_ROOT", "/no/such/dir", "--web-root: /no/such/dir is not a directory"),
    ],
)
def test_bad_variables_are_refused_like_flags(monkeypatch, capsys, variable, value, reason):
    monkeypatch.setenv(variable, value)
    assert reason in refusal([], capsys)


def test_a_bad_list_in_the_config_file_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "litesfu.toml"
    path.write_text('candidate = ["10.0.0.1", "not-an-ip"]\n')
    assert "candidate: not-an-ip is not an IP address" in refusal(["--config", str(path)], capsys)


def test_good_values_are_taken_in_canonical_form() -> None:
    args = parse_args(["--candidate", "[2001:DB8::1]", "--log-level", "DEBUG", "--udp-port", "0"])
    assert args.candidate == ["2001:db8::1"]
    assert (args.log_level, args.udp_port) == ("debug", 0)
    assert parse_args([]).web_root.is_dir()


def test_a_candidate_host_name_is_resolved_at_start_and_says_which() -> None:
    (address,) = parse_args(["--candidate", "localhost"]).candidate
    assert address in ("127.0.0.1", "::1")
    assert address.name == "localhost"


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.EADDRINUSE, "another process holds it: stop that process or choose another"),
        (errno.EACCES, "ports below 1024 need root"),
        (errno.EADDRNOTAVAIL, "this machine has no such address"),
    ],
)
def test_a_bind_failure_names_protocol_address_port_and_what_to_do(code, advice) -> None:
    line = bind_failure("UDP", "0.0.0.0", 8000, "--udp-port", OSError(code, "x"))
    assert line.startswith("litesfu: cannot bind UDP 0.0.0.0:8000 (--udp-port): ")
    assert advice in line and "\n" not in line
    assert "[::1]:80 " in bind_failure("HTTP", "::1", 80, "--http-port", OSError(code, "x"))
