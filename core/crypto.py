"""Session strings at rest: MultiFernet over SESSION_KEYS (the first key encrypts, all decrypt)."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr


class SecretBoxError(Exception):
    """A ciphertext no configured key can open (wrong keys, or the data was tampered with)."""


class SecretBox:
    def __init__(self, keys: Iterable[SecretStr | str]) -> None:
        raw = [k.get_secret_value() if isinstance(k, SecretStr) else k for k in keys]
        if not raw:
            raise ValueError("at least one key is needed")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in raw])
        except ValueError:
            # Fernet's message would not say which setting is wrong, and must not echo the key.
            raise ValueError("SESSION_KEYS holds a value that is not a Fernet key") from None

    def encrypt(self, plain: str) -> bytes:
        return self._fernet.encrypt(plain.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode()
        except InvalidToken:
            raise SecretBoxError("cannot decrypt with the configured SESSION_KEYS") from None

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the first key (after a new key was put in front)."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise SecretBoxError("cannot decrypt with the configured SESSION_KEYS") from None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()
