"""H264 profile-level-id (RFC 6184 §8.1): which decoder a stream needs, from three hex bytes.

The SDP names an H264 format by profile_idc, profile-iop (the constraint flags) and
level_idc. Two formats with the same profile_idc byte may still be different profiles (42e0
is Constrained Baseline, 4200 Baseline), so players are matched by profile, read here by the
table of RFC 6184 §8.1 (Table 5), not by the first byte.
"""

from __future__ import annotations

from typing import NamedTuple

CONSTRAINED_BASELINE = "Constrained Baseline"
BASELINE = "Baseline"
MAIN = "Main"
EXTENDED = "Extended"
HIGH = "High"
CONSTRAINED_HIGH = "Constrained High"

# RFC 6184 §8.1: with no profile-level-id, Baseline at level 1 is meant.
DEFAULT_PROFILE_LEVEL_ID = "42000a"
_LEVEL_1B = 10.5  # level_idc 11 with constraint_set3 (Baseline, Main, Extended), or 9

# (profile_idc, mask of the profile-iop bits that matter, their value, profile): the first
# row that fits names the profile. Bits 3..0 of profile-iop (constraint_set4/5, reserved)
# are zero for these profiles except Constrained High, which sets constraint_set4 and 5.
_TABLE: tuple[tuple[int, int, int, str], ...] = (
    (0x42, 0x4F, 0x40, CONSTRAINED_BASELINE),
    (0x4D, 0x8F, 0x80, CONSTRAINED_BASELINE),
    (0x58, 0xCF, 0xC0, CONSTRAINED_BASELINE),
    (0x42, 0x4F, 0x00, BASELINE),
    (0x58, 0xCF, 0x80, BASELINE),
    (0x4D, 0xAF, 0x00, MAIN),
    (0x58, 0xCF, 0x00, EXTENDED),
    (0x64, 0xFF, 0x00, HIGH),
    (0x64, 0xFF, 0x0C, CONSTRAINED_HIGH),
)

# Profiles whose decoders also take a stream of another profile, as a superset of its tools:
# a Constrained Baseline stream conforms to Baseline, Main and so High; Constrained High to
# High. One exception the other way: WebRTC encoders (libwebrtc's OpenH264, aiortc's x264)
# that offer Baseline (42001f) send Constrained Baseline, and a Constrained Baseline player
# (Firefox) has always played them, so it keeps doing so.
_ALSO_DECODES: dict[str, frozenset[str]] = {
    CONSTRAINED_BASELINE: frozenset({BASELINE}),
    BASELINE: frozenset({CONSTRAINED_BASELINE}),
    MAIN: frozenset({CONSTRAINED_BASELINE}),
    HIGH: frozenset({CONSTRAINED_BASELINE, MAIN, CONSTRAINED_HIGH}),
}


class ProfileLevel(NamedTuple):
    """A profile-level-id read: the profile's name (or "profile_idc 0xNN" when not in the
    table, which then matches only itself) and the level, 1b counted as 1.05."""

    profile: str
    level: float
    raw: str  # the six hex digits, lower-case


def parse_profile_level_id(value: str | None) -> ProfileLevel | None:
    """The profile and level of an fmtp profile-level-id (absent: RFC 6184's default);
    None when it is not six hex digits."""
    text = (DEFAULT_PROFILE_LEVEL_ID if value is None else value).strip().lower()
    if len(text) != 6 or any(c not in "0123456789abcdef" for c in text):
        return None
    idc, iop, level_idc = bytes.fromhex(text)
    profile = next(
        (name for p, mask, bits, name in _TABLE if p == idc and iop & mask == bits),
        f"profile_idc 0x{idc:02x}",
    )
    level = level_idc / 10
    if (level_idc == 11 and iop & 0x10 and idc in (0x42, 0x4D, 0x58)) or level_idc == 9:
        level = _LEVEL_1B / 10
    return ProfileLevel(profile, level, text)


def decodes(receiver: ProfileLevel, stream: ProfileLevel, level_asymmetry: bool) -> bool:
    """True when a receiver that offered `receiver` can decode a stream sent as `stream`:
    the same profile or one its decoder is a superset of, and (unless the receiver allowed
    level asymmetry, RFC 6184 §8.2.2) a level no higher than its own."""
    if stream.profile != receiver.profile and stream.profile not in _ALSO_DECODES.get(
        receiver.profile, frozenset()
    ):
        return False
    return level_asymmetry or stream.level <= receiver.level
