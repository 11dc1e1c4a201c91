"""Download links (download_links.py): what a token opens, and everything it does not."""

from __future__ import annotations

import pytest

from videojob_gateway import download_links as dl

KEY = b"k" * 32
NOW = 1_800_000_000.0


def link(ns: str = "team-a", name: str = "lighthouse", uid: str = "uid-1",
         now: float = NOW, seconds: int = 300) -> dl.Link:
    return dl.issue(KEY, ns, name, uid, now, seconds)


def refused(token: str, ns: str = "team-a", name: str = "lighthouse",
            uid: str | None = "uid-1", now: float = NOW + 1, key: bytes = KEY) -> str:
    with pytest.raises(dl.LinkRefused) as e:
        dl.check(key, token, ns, name, uid, now)
    return str(e.value)


def test_a_link_opens_its_videojob_until_it_expires() -> None:
    made = link()
    assert made.expires_at == NOW + 300
    dl.check(KEY, made.token, "team-a", "lighthouse", "uid-1", NOW)
    dl.check(KEY, made.token, "team-a", "lighthouse", "uid-1", NOW + 299.9)
    assert "expired" in refused(made.token, now=NOW + 300)
    assert "expired" in refused(made.token, now=NOW + 10_000)


def test_a_link_opens_no_other_videojob() -> None:
    token = link().token
    assert "not valid" in refused(token, ns="team-b")
    assert "not valid" in refused(token, name="lighthouse2")
    # The same name made again (another uid): the old link does not open the new video.
    assert "not valid" in refused(token, uid="uid-2")
    # No such VideoJob: the same answer as a forged token, not a 404.
    assert refused(token, uid=None) == refused(token, uid="uid-2")
    # Fields do not run into each other: ("a-b", "c") and ("a", "b-c") sign different bytes.
    assert link("a", "bc").token != link("ab", "c").token


def test_a_tampered_link_is_refused() -> None:
    token = link().token
    expiry, sig = token.split(".")
    later = f"{int(expiry) + 3600}.{sig}"  # a longer life, same signature
    assert "not valid" in refused(later)
    flipped = f"{expiry}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}"
    assert "not valid" in refused(flipped)
    assert "not valid" in refused(token, key=b"another key of 32 bytes........")


@pytest.mark.parametrize("token", ["", ".", "abc", "123", "123.", ".abc", "12x.abc",
                                   "-1." + "A" * 43, "1" * 13 + "." + "A" * 43,
                                   "1800000300." + "A" * 42, "1800000300." + "A" * 44])
def test_malformed_tokens_are_refused(token: str) -> None:
    assert "malformed" in refused(token)


def test_a_link_lives_five_minutes_at_most() -> None:
    with pytest.raises(ValueError):
        link(seconds=301)
    with pytest.raises(ValueError):
        link(seconds=0)
    with pytest.raises(ValueError):
        link(uid="")
    assert link(seconds=30).expires_at == NOW + 30


def test_a_link_signed_for_longer_than_any_issued_is_refused() -> None:
    # As if this gateway had signed a link an hour long (a key shared elsewhere, a clock set
    # back): a valid signature is not enough.
    expires_at = int(NOW) + 3600
    sig = dl._b64(dl._signature(KEY, "team-a", "lighthouse", "uid-1", expires_at))
    assert "not valid" in refused(f"{expires_at}.{sig}", now=NOW)
