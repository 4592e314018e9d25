"""The config file beneath flags and environment, over the parser's own actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.startup.flags import parse_args
from signaling.startup.settings import read_file

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SFU_HTTP_PORT", "SFU_CANDIDATE", "SFU_MAX_PLAYERS", "SFU_AUTH_STATS"):
        monkeypatch.delenv(name, raising=False)


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "litesfu.toml"
    path.write_text(text)
    return str(path)


def test_the_example_file_parses_into_settings() -> None:
    path = ROOT / "litesfu.example.toml"
    assert read_file(path)["http_port"] == 8080
    args = parse_args(["--config", str(path)])
    assert args.http_port == 8080
    assert args.candidate == ["203.0.113.10"]
    assert args.log_format == "json"
    assert args.metrics_per_stream == 20


def test_flag_beats_environment_beats_file_beats_default(tmp_path, monkeypatch) -> None:
    path = config(tmp_path, 'http-port = 9001\nmax_players = 7\ncandidate = "10.0.0.1"\n')
    args = parse_args(["--config", path])
    assert (args.http_port, args.max_players, args.candidate) == (9001, 7, ["10.0.0.1"])
    assert args.max_sessions == 1000  # not in the file: the default
    monkeypatch.setenv("SFU_HTTP_PORT", "9002")
    monkeypatch.setenv("SFU_CANDIDATE", "10.0.0.2,10.0.0.3")
    args = parse_args(["--config", path])
    assert (args.http_port, args.max_players) == (9002, 7)
    assert args.candidate == ["10.0.0.2", "10.0.0.3"]
    args = parse_args(["--config", path, "--http-port", "9003", "--candidate", "10.0.0.4"])
    assert (args.http_port, args.candidate) == (9003, ["10.0.0.4"])


def test_file_list_is_replaced_by_flags_not_added_to(tmp_path) -> None:
    path = config(tmp_path, 'candidate = ["10.0.0.1", "10.0.0.2"]\n')
    args = parse_args(["--config", path, "--candidate", "10.0.0.9", "--candidate", "10.0.0.8"])
    assert args.candidate == ["10.0.0.9", "10.0.0.8"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("http-prot = 1\n", "unknown setting 'http_prot'"),
        ("auth-stats = 1\n", "auth_stats must be true or false"),
        ("candidate = [1, 2]\n", "candidate must be a string or a list of strings"),
        ("http-port = [1]\n", "http_port must be a single value"),
        ("http-port = 'x'\n", "--http-port: x is not a port (0-65535)"),
        ("log-format = 'xml'\n", "log_format must be one of text, json"),
        ("this is = not toml\n", "is not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path, capsys, text: str, reason: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--config", config(tmp_path, text)])
    assert exit_info.value.code == 2
    assert reason in capsys.readouterr().err


def test_missing_file_is_a_clear_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--config", str(tmp_path / "nope.toml")])
    assert "nope.toml is not a file" in capsys.readouterr().err


def test_print_config_masks_secrets_and_reads_back(tmp_path, capsys) -> None:
    path = config(tmp_path, 'auth-secret = "hunter2"\nauth-token = ["tok-1"]\nmax-players = 3\n')
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--config", path, "--print-config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "hunter2" not in printed and "tok-1" not in printed
    assert 'auth-secret = "***"' in printed
    assert "max-players = 3" in printed
    again = config(tmp_path, printed.replace('"***"', '"s"').replace('["***"]', '["t"]'))
    assert parse_args(["--config", again]).max_players == 3  # the output is a config file


def test_print_config_masks_a_password_inside_a_url(tmp_path, capsys) -> None:
    path = config(
        tmp_path,
        'redis-url = "redis://:hunter2@127.0.0.1:6379/0"\ncluster-secret = "0123456789abcdef"\n',
    )
    with pytest.raises(SystemExit):
        parse_args(["--config", path, "--print-config"])
    printed = capsys.readouterr().out
    assert "hunter2" not in printed
    assert 'redis-url = "redis://:***@127.0.0.1:6379/0"' in printed
