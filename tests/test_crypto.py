"""Session strings at rest: round trip, key rotation, wrong keys."""

from __future__ import annotations

import pytest

from core.crypto import SecretBox, SecretBoxError


def test_round_trip_and_ciphertext_hides_plain() -> None:
    box = SecretBox([SecretBox.generate_key()])
    token = box.encrypt("1BQANOTEXAMPLE-session")
    assert b"NOTEXAMPLE" not in token
    assert box.decrypt(token) == "1BQANOTEXAMPLE-session"


def test_decrypts_after_rotation_and_rotate_moves_to_new_key() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token = SecretBox([old]).encrypt("session-a")
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(token) == "session-a"
    moved = rotated_box.rotate(token)
    assert SecretBox([new]).decrypt(moved) == "session-a"
    with pytest.raises(SecretBoxError):
        SecretBox([old]).decrypt(moved)


def test_wrong_key_is_a_clear_error() -> None:
    token = SecretBox([SecretBox.generate_key()]).encrypt("s")
    with pytest.raises(SecretBoxError):
        SecretBox([SecretBox.generate_key()]).decrypt(token)
    with pytest.raises(ValueError, match="SESSION_KEYS"):
        SecretBox(["not-a-key"])
