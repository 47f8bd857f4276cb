"""The older bot's session strings → tgcast's Telethon strings: pure tests, no database.

The strings are written by `tests.legacy_session_strings`, which follows each library's own writer
(and, for Telethon, is the library), and every converted string is loaded back by the installed
Telethon, so these tests compare the parser with the libraries rather than with itself.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import traceback
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from legacy.sessions import LegacySession, UnreadableSession, parse_session
from tests.legacy_session_strings import gramjs_string, gramjs_string_of_parts, pyrogram_string, telethon_string

# Written out here rather than imported, so that a wrong table in the module fails these tests.
PRODUCTION = {1: "149.154.175.53", 2: "149.154.167.51", 3: "149.154.175.100", 4: "149.154.167.91",
              5: "91.108.56.130"}
TEST = {1: "149.154.175.10", 2: "149.154.167.40", 3: "149.154.175.117"}

KEY = bytes(range(256))
ONE_BIT_KEY = bytes(255) + b"\x01"  # the least a key can hold and still be a key
FULL_KEY = b"\xff" * 256

keys = st.binary(min_size=256, max_size=256).filter(any)
production_dcs = st.integers(1, 5)
# Addresses whose first two bytes exceed 100, where gramjs would see an address length (the parser
# refuses the others: see test_addresses_that_read_as_a_gramjs_length_are_refused).
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_server(ip: IPAddress) -> bool:
    lowest = ipaddress.IPv4Address("0.101.0.0") if ip.version == 4 else ipaddress.IPv6Address("65::")
    return int(ip) >= int(lowest)


ipv4_servers: st.SearchStrategy[IPAddress] = st.ip_addresses(v=4).filter(_is_server)
ipv6_servers: st.SearchStrategy[IPAddress] = st.ip_addresses(v=6).filter(_is_server)
servers = ipv4_servers | ipv6_servers
gramjs_ports = st.sampled_from([80, 443]) | st.integers(1, 32767)  # gramjs writes the port as int16


def telethon_view(string: str) -> tuple[int, str, int, bytes]:
    session = StringSession(string)
    return session.dc_id, session.server_address, session.port, session.auth_key.key


def assert_converts_faithfully(session: LegacySession) -> None:
    """The converted string is what Telethon itself writes, and Telethon reads it back unchanged."""
    converted = session.to_telethon()
    assert converted == telethon_string(session.dc, session.address, session.port, session.auth_key)
    assert telethon_view(converted) == (session.dc, session.address, session.port, session.auth_key)


# ---- round trips -------------------------------------------------------------------------------


@given(dc=production_dcs, ip=servers, exploded=st.booleans(), port=gramjs_ports, key=keys)
@example(dc=4, ip=ipaddress.ip_address("149.154.167.91"), exploded=False, port=80, key=KEY)  # a fresh session
@example(dc=2, ip=ipaddress.ip_address("149.154.167.51"), exploded=False, port=443, key=ONE_BIT_KEY)
@example(dc=1, ip=ipaddress.ip_address("1.0.0.0"), exploded=False, port=1, key=FULL_KEY)  # 7 characters
@example(dc=5, ip=ipaddress.ip_address("255.255.255.255"), exploded=False, port=32767, key=KEY)
@example(dc=4, ip=ipaddress.ip_address("2001:67c:4e8:f004::a"), exploded=True, port=443, key=KEY)  # 39 chars
@example(dc=3, ip=ipaddress.ip_address("2001:b28:f23d:f003::a"), exploded=False, port=443, key=KEY)
def test_gramjs_round_trip(dc: int, ip: IPAddress, exploded: bool, port: int,
                           key: bytes) -> None:
    text = ip.exploded if exploded else ip.compressed
    if len(text) < 7:
        text = ip.exploded  # gramjs never writes a shorter address; those are refused (below)
    session = parse_session(gramjs_string(dc, text, port, key))
    assert session == LegacySession("gramjs", dc, ip.compressed, port, key, user_id=None, api_id=None,
                                    test_mode=False)
    assert_converts_faithfully(session)


@given(dc=production_dcs, ip=servers, port=st.integers(1, 65535), key=keys)
@example(dc=2, ip=ipaddress.ip_address("149.154.167.51"), port=443, key=KEY)
@example(dc=1, ip=ipaddress.ip_address("1.0.0.0"), port=1, key=ONE_BIT_KEY)
@example(dc=5, ip=ipaddress.ip_address("255.255.255.255"), port=65535, key=FULL_KEY)
@example(dc=2, ip=ipaddress.ip_address("65::"), port=443, key=KEY)  # the lowest IPv6 accepted
@example(dc=2, ip=ipaddress.ip_address("0.101.0.0"), port=443, key=KEY)  # the lowest IPv4 accepted
@example(dc=2, ip=ipaddress.ip_address("2001:67c:4e8:f002::a"), port=443, key=KEY)
@example(dc=4, ip=ipaddress.ip_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), port=80, key=KEY)
def test_telethon_round_trip(dc: int, ip: IPAddress, port: int,
                             key: bytes) -> None:
    original = telethon_string(dc, ip.compressed, port, key)
    session = parse_session(original)
    assert session == LegacySession("telethon", dc, ip.compressed, port, key, user_id=None, api_id=None,
                                    test_mode=False)
    assert session.to_telethon() == original
    assert_converts_faithfully(session)


@given(dc=production_dcs, key=keys, user_id=st.integers(1, 2**64 - 1), api_id=st.integers(1, 2**32 - 1))
@example(dc=1, key=ONE_BIT_KEY, user_id=1, api_id=1)
@example(dc=5, key=FULL_KEY, user_id=2**64 - 1, api_id=2**32 - 1)
@example(dc=2, key=KEY, user_id=7_123_456_789, api_id=2040)
def test_pyrogram_round_trip(dc: int, key: bytes, user_id: int, api_id: int) -> None:
    string = pyrogram_string(dc, key, user_id, api_id=api_id)
    assert len(string) == 362
    session = parse_session(string)
    assert session == LegacySession("pyrogram", dc, PRODUCTION[dc], 443, key, user_id=user_id, api_id=api_id,
                                    test_mode=False)
    assert_converts_faithfully(session)


@given(dc=production_dcs, key=keys, user_id=st.integers(1, 2**32 - 1), wide=st.booleans())
@example(dc=1, key=ONE_BIT_KEY, user_id=1, wide=False)
@example(dc=5, key=FULL_KEY, user_id=2**32 - 1, wide=False)
@example(dc=4, key=KEY, user_id=2**32 - 1, wide=True)
def test_pyrogram_older_layouts_round_trip(dc: int, key: bytes, user_id: int, wide: bool) -> None:
    string = pyrogram_string(dc, key, user_id, layout="old64" if wide else "old32")
    assert len(string) == (356 if wide else 351)
    session = parse_session(string)
    assert session == LegacySession("pyrogram", dc, PRODUCTION[dc], 443, key, user_id=user_id, api_id=None,
                                    test_mode=False)
    assert_converts_faithfully(session)


@pytest.mark.parametrize("layout", ["current", "old32", "old64"])
@pytest.mark.parametrize("dc", sorted(TEST))
def test_pyrogram_test_mode_uses_the_test_servers_on_port_80(dc: int, layout) -> None:
    session = parse_session(pyrogram_string(dc, KEY, 42, test_mode=True, layout=layout))
    assert (session.dc, session.address, session.port, session.test_mode) == (dc, TEST[dc], 80, True)
    assert session.user_id == 42
    assert_converts_faithfully(session)


@pytest.mark.parametrize("dc", sorted(PRODUCTION))
@pytest.mark.parametrize("hostname", ["vesta.web.telegram.org", "pluto.web.telegram.org", "localhost-1"])
@pytest.mark.parametrize("port", [80, 443])
def test_a_gramjs_hostname_becomes_the_production_address_of_its_dc(dc: int, hostname: str, port: int) -> None:
    session = parse_session(gramjs_string(dc, hostname, port, KEY))
    assert (session.format, session.dc, session.address, session.port) == ("gramjs", dc, PRODUCTION[dc], port)
    assert_converts_faithfully(session)


def test_surrounding_whitespace_is_ignored() -> None:
    for string in (gramjs_string(2, "149.154.167.51", 443, KEY), telethon_string(2, "149.154.167.51", 443, KEY),
                   pyrogram_string(2, KEY, 42)):
        assert parse_session(f" \t{string}\r\n") == parse_session(string)


def test_either_base64_alphabet_and_padding_are_tolerated() -> None:
    gramjs = gramjs_string(4, "149.154.167.91", 80, FULL_KEY)  # all-ones bytes: '/' and '+' in the text
    assert "/" in gramjs
    urlsafe = gramjs.replace("+", "-").replace("/", "_")
    unpadded = gramjs.rstrip("=")
    pyrogram = pyrogram_string(2, FULL_KEY, 42)
    padded = pyrogram + "=" * (-len(pyrogram) % 4)
    assert parse_session(urlsafe) == parse_session(unpadded) == parse_session(gramjs)
    assert parse_session(padded) == parse_session(pyrogram)


def test_pyrogram_zero_ids_mean_unknown() -> None:
    session = parse_session(pyrogram_string(2, KEY, 0, api_id=0))
    assert (session.user_id, session.api_id) == (None, None)


# ---- the trap: a gramjs string that Telethon reads without complaint ---------------------------


@given(ip=ipv4_servers.filter(lambda ip: len(str(ip)) == 14), dc=production_dcs, key=keys)
@example(ip=ipaddress.ip_address("149.154.167.51"), dc=2, key=KEY)
@example(ip=ipaddress.ip_address("149.154.175.53"), dc=1, key=KEY)
def test_a_14_character_gramjs_address_misleads_telethon_but_not_us(ip, dc: int, key: bytes) -> None:
    string = gramjs_string(dc, str(ip), 443, key)
    assert len(string) == len(telethon_string(dc, "2001:67c:4e8:f002::a", 443, key)) == 369
    misread_dc, misread_address, _, misread_key = telethon_view(string)
    assert misread_address != str(ip) and ipaddress.ip_address(misread_address).version == 6
    assert (misread_dc, misread_key) == (dc, key)  # nothing else looks wrong: the failure is silent

    session = parse_session(string)
    assert (session.format, session.dc, session.address, session.port) == ("gramjs", dc, str(ip), 443)
    assert telethon_view(session.to_telethon()) == (dc, str(ip), 443, key)


def test_gramjs_is_recognised_before_telethon_ipv6_of_the_same_size() -> None:
    gramjs = gramjs_string(2, "149.154.167.51", 443, KEY)
    ipv6 = telethon_string(2, "2001:67c:4e8:f002::a", 443, KEY)
    assert len(base64.b64decode(gramjs[1:])) == len(base64.urlsafe_b64decode(ipv6[1:])) == 275
    assert parse_session(gramjs).format == "gramjs"
    assert parse_session(ipv6).format == "telethon"
    assert parse_session(ipv6).address == "2001:67c:4e8:f002::a"


# ---- refusals ----------------------------------------------------------------------------------


def _with_char(string: str, at: int, char: str) -> str:
    return string[:at] + char + string[at + 1:]


REFUSED: dict[str, Callable[[], str]] = {
    "empty": lambda: "",
    "blank": lambda: " \n\t ",
    "garbage": lambda: "garbage",
    "version character alone": lambda: "1",
    "not base64 after the version": lambda: "1" + "*" * 368,
    "a base64 digit too many": lambda: gramjs_string(2, "149.154.167.51", 443, KEY).rstrip("=") + "AA",
    "pyrogram not base64": lambda: _with_char(pyrogram_string(2, KEY, 42), 100, "!"),
    "pyrogram not ASCII": lambda: _with_char(pyrogram_string(2, KEY, 42), 100, "ё"),
    "gramjs not ASCII": lambda: _with_char(gramjs_string(2, "149.154.167.51", 443, KEY), 100, "ё"),
    "pyrogram padding inside": lambda: _with_char(pyrogram_string(2, KEY, 42), 100, "="),
    "pyrogram one short": lambda: pyrogram_string(2, KEY, 42)[:-1],
    "pyrogram one long": lambda: pyrogram_string(2, KEY, 42) + "A",
    "telethon truncated": lambda: telethon_string(2, "149.154.167.51", 443, KEY)[:-8],
    "telethon without version": lambda: telethon_string(2, "149.154.167.51", 443, KEY)[1:],
    "telethon with a longer key": lambda: "1" + base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(telethon_string(2, "149.154.167.51", 443, KEY)[1:]) + b"\x01\x02\x03").decode(),
    "telethon zero key": lambda: "1" + base64.urlsafe_b64encode(bytes([2]) + bytes([149, 154, 167, 51])
                                                                 + (443).to_bytes(2, "big") + bytes(256)).decode(),
    "telethon unknown dc": lambda: telethon_string(9, "149.154.167.51", 443, KEY),
    "telethon dc 0": lambda: telethon_string(0, "149.154.167.51", 443, KEY),
    "telethon port 0": lambda: telethon_string(2, "149.154.167.51", 0, KEY),
    "telethon address in 0.0/10": lambda: telethon_string(2, "0.100.1.1", 443, KEY),
    "telethon address below 65::": lambda: telethon_string(2, "64:ff9b::95.154.167.51", 443, KEY),
    "gramjs zero key": lambda: gramjs_string(2, "149.154.167.51", 443, bytes(256)),
    "gramjs short key": lambda: gramjs_string(2, "149.154.167.51", 443, KEY[:-1]),
    "gramjs port 0": lambda: gramjs_string(2, "149.154.167.51", 0, KEY),
    "gramjs negative port": lambda: gramjs_string(2, "149.154.167.51", -1, KEY),
    "gramjs dc 0": lambda: gramjs_string(0, "149.154.167.51", 443, KEY),
    "gramjs dc 6": lambda: gramjs_string(6, "149.154.167.51", 443, KEY),
    "gramjs hostname of dc 6": lambda: gramjs_string(6, "vesta.web.telegram.org", 443, KEY),
    "gramjs non-ASCII address": lambda: gramjs_string(2, "149.154.167.5é", 443, KEY),
    # 14 non-ASCII bytes: the size of Telethon IPv6, which must not be read instead.
    "gramjs non-ASCII address of 14 bytes": lambda: gramjs_string_of_parts(2, 14, b"\xff" * 14, 443, KEY),
    "gramjs address neither IP nor hostname": lambda: gramjs_string(2, "149.154.167.5!", 443, KEY),
    "gramjs address with a space": lambda: gramjs_string(2, "vesta telegram", 443, KEY),
    "gramjs address of 6 characters": lambda: gramjs_string(2, "::ffff", 443, KEY),
    "gramjs address length 0": lambda: gramjs_string(2, "", 443, KEY),
    "gramjs address length 2, which is Telethon IPv4's size": lambda: gramjs_string(2, "ab", 443, KEY),
    "gramjs address length 101": lambda: gramjs_string(2, "a" * 101, 443, KEY),
    "gramjs address length negative": lambda: gramjs_string_of_parts(2, -5, b"149.154.167.5", 443, KEY),
    "gramjs address length lying": lambda: gramjs_string_of_parts(2, 13, b"149.154.167.51", 443, KEY),
    "pyrogram zero key": lambda: pyrogram_string(2, bytes(256), 42),
    "pyrogram bot": lambda: pyrogram_string(2, KEY, 42, is_bot=True),
    "pyrogram bot, old layout": lambda: pyrogram_string(2, KEY, 42, is_bot=True, layout="old32"),
    "pyrogram bot, old wide layout": lambda: pyrogram_string(2, KEY, 42, is_bot=True, layout="old64"),
    "pyrogram dc 0": lambda: pyrogram_string(0, KEY, 42),
    "pyrogram dc 6": lambda: pyrogram_string(6, KEY, 42),
    "pyrogram dc 203": lambda: pyrogram_string(203, KEY, 42),
    "pyrogram test dc 4": lambda: pyrogram_string(4, KEY, 42, test_mode=True),
}


def _forbidden_texts(string: str) -> list[str]:
    """What must never appear in an error: the input and the key in any spelling we can think of."""
    texts = [KEY.hex(), KEY.hex().upper(), base64.b64encode(KEY).decode(), base64.urlsafe_b64encode(KEY).decode(),
             repr(KEY)[2:60]]
    # A short input (empty, "1", "garbage") is a substring of many words; long ones are what leak.
    if len(string.strip()) >= 16:
        texts += [string.strip(), string.strip()[1:40], string.strip()[-40:]]
    return texts


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unreadable_strings_are_refused_without_echoing_them(name: str) -> None:
    string = REFUSED[name]()
    with pytest.raises(UnreadableSession) as caught:
        parse_session(string)
    error = caught.value
    assert isinstance(error, ValueError) and error.reason
    shown = [str(error), repr(error), error.reason, "".join(traceback.format_exception(error))]
    for text in _forbidden_texts(string):
        assert not any(text in what for what in shown), name


def test_telethon_reads_a_gramjs_address_of_14_non_ascii_bytes_as_ipv6_that_we_refuse() -> None:
    string = REFUSED["gramjs non-ASCII address of 14 bytes"]()
    assert ipaddress.ip_address(telethon_view(string)[1]).version == 6


@pytest.mark.parametrize(
    "address", ["0.0.0.0", "0.100.255.255", "::", "::1", "::ffff:149.154.167.51", "64::", "64:ff9b::1"])
def test_addresses_that_read_as_a_gramjs_length_are_refused(address: str) -> None:
    """Their first two bytes, read as gramjs's address length, are at most 100; no Telegram server
    has such an address."""
    with pytest.raises(UnreadableSession):
        parse_session(telethon_string(2, address, 443, KEY))
    with pytest.raises(UnreadableSession):
        LegacySession("telethon", 2, address, 443, KEY, user_id=None, api_id=None, test_mode=False)


# ---- the value itself --------------------------------------------------------------------------

VALID = LegacySession("pyrogram", 2, PRODUCTION[2], 443, KEY, user_id=42, api_id=2040, test_mode=False)


@pytest.mark.parametrize(
    "changes",
    [
        {"format": "tdata"},
        {"dc": 0}, {"dc": 6}, {"dc": 203}, {"dc": 4, "test_mode": True, "address": TEST[1]},
        {"port": 0}, {"port": 65536}, {"port": -443},
        {"auth_key": KEY[:-1]}, {"auth_key": KEY + b"\x00"}, {"auth_key": b""}, {"auth_key": bytes(256)},
        {"address": "vesta.web.telegram.org"}, {"address": ""}, {"address": "149.154.167.051"},
        {"address": "2001:067c:04e8:f002::a"},  # not the form Telethon reports
        {"address": "fe80::1%eth0"},  # a scope does not survive Telethon's string
        {"address": "0.1.2.3"},
        {"user_id": 0}, {"user_id": -1}, {"api_id": 0}, {"api_id": -5},
    ],
)
def test_the_constructor_refuses_what_cannot_be_a_session(changes: dict) -> None:
    with pytest.raises(UnreadableSession):
        replace(VALID, **changes)


def test_the_constructor_accepts_the_boundaries() -> None:
    for changes in ({"dc": 1}, {"dc": 5}, {"port": 1}, {"port": 65535}, {"auth_key": ONE_BIT_KEY},
                    {"user_id": None, "api_id": None}, {"dc": 3, "test_mode": True, "address": TEST[3], "port": 80},
                    {"address": "2001:67c:4e8:f002::a"}):
        session = replace(VALID, **changes)
        assert {name: getattr(session, name) for name in changes} == changes


def test_key_id_is_telegrams() -> None:
    expected = hashlib.sha1(KEY).digest()[-8:]
    assert VALID.key_id == expected.hex()
    assert int.from_bytes(bytes.fromhex(VALID.key_id), "little") == AuthKey(KEY).key_id


@given(string=st.one_of(
    st.builds(gramjs_string, production_dcs, st.just("149.154.167.51"), gramjs_ports, keys),
    st.builds(telethon_string, production_dcs, st.just("149.154.167.51"), st.integers(1, 65535), keys),
    st.builds(pyrogram_string, production_dcs, keys, st.integers(1, 2**64 - 1)),
))
def test_repr_and_description_never_show_the_key(string: str) -> None:
    session = parse_session(string)
    key = session.auth_key
    shown = [repr(session), str(session), repr(session.describe()), str(session.describe())]
    for secret in (key.hex(), key.hex().upper(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(),
                   repr(key)[2:40], string, string[1:40], session.to_telethon()[1:40]):
        assert not any(secret in text for text in shown)
    assert session.describe() == {"format": session.format, "dc": session.dc, "port": session.port,
                                  "key_id": session.key_id, "test_mode": False,
                                  "has_user_id": session.format == "pyrogram"}
