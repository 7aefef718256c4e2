"""Encrypted payloads: an AES-GCM payload codec for the client, the worker and the codec server.

With LEO_PAYLOAD_KEY set, every payload (workflow and activity inputs, results, failure
details, memos) leaves the process encrypted, so the Temporal server and its database see
only ciphertext. Search attributes are not payloads: they stay readable and must hold no
secrets. Without a key nothing changes: payloads stay plain JSON.

An encrypted payload is `nonce (12 bytes) || AES-GCM(serialized original payload)`, with the
key id in its metadata and bound to the ciphertext as associated data, so a key can be
rotated: the current key encrypts, older ones listed in LEO_PAYLOAD_OLD_KEYS still decrypt.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from leo.infra.failures import LEO_DATA_CONVERTER, LeoFailureConverter
from leo.infra.settings import InvalidSetting, Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
DEFAULT_KEY_ID = "default"


class PayloadKeyError(InvalidSetting):
    """A key that is malformed, missing or wrong; the message names the key id."""


def new_key() -> str:
    """A fresh key for LEO_PAYLOAD_KEY: the base64 of 32 random bytes."""
    return base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode()


def parse_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadKeyError(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise PayloadKeyError(
            f"{what} must be the base64 of {KEY_BYTES} bytes, not {len(raw)}; "
            "`leo codec-server --new-key` prints one"
        )
    return raw


def parse_old_keys(text: str) -> dict[str, bytes]:
    """`id:base64,id:base64` (LEO_PAYLOAD_OLD_KEYS) -> {id: key}."""
    keys: dict[str, bytes] = {}
    for number, item in enumerate((part.strip() for part in text.split(",")), start=1):
        if not item:
            continue
        key_id, sep, value = item.partition(":")
        if not sep or not key_id.strip():
            # Named by its position: any part of the value could be key material.
            raise PayloadKeyError(
                "LEO_PAYLOAD_OLD_KEYS must be written 'id:base64,id:base64,...' "
                f"(entry {number} has no key id)"
            )
        key_id = key_id.strip()
        keys[key_id] = parse_key(value, f"LEO_PAYLOAD_OLD_KEYS entry {key_id!r}")
    return keys


class KeyRing:
    """The current key (which encrypts) and every key that may still decrypt, by id."""

    def __init__(self, current_id: str, keys: Mapping[str, bytes]) -> None:
        if current_id not in keys:
            raise PayloadKeyError(f"no key for the current key id {current_id!r}")
        self.current_id = current_id
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    @classmethod
    def from_values(cls, key: str, key_id: str | None = None, old_keys: str = "") -> KeyRing:
        current = (key_id or DEFAULT_KEY_ID).strip()
        keys = parse_old_keys(old_keys)
        keys[current] = parse_key(key, "LEO_PAYLOAD_KEY")
        return cls(current, keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def cipher(self, key_id: str) -> AESGCM:
        try:
            return self._ciphers[key_id]
        except KeyError:
            raise PayloadKeyError(
                f"payload was encrypted with key id {key_id!r}, which this process does not "
                f"have (it knows {', '.join(map(repr, self._ciphers))}); add it to "
                "LEO_PAYLOAD_OLD_KEYS as 'id:base64'"
            ) from None


class EncryptionCodec(PayloadCodec):
    """AES-GCM over whole payloads. Payloads that are not encrypted pass through decode
    unchanged, so histories written before encryption was turned on still read and replay."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keys.current_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.keys.cipher(key_id).encrypt(
            nonce, payload.SerializeToString(), key_id.encode()
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self.keys.cipher(key_id)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadKeyError(
                f"payload encrypted with key id {key_id!r} does not decrypt with the key "
                "configured under that id: wrong key, or the payload was altered"
            ) from None
        return Payload.FromString(plain)

    def encrypt_all(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    def decrypt_all(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encrypt_all(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decrypt_all(payloads)


def codec_for(settings: Settings) -> EncryptionCodec | None:
    """The codec LEO_PAYLOAD_KEY, LEO_PAYLOAD_KEY_ID and LEO_PAYLOAD_OLD_KEYS describe, or None
    when no key is set (payloads stay plain JSON)."""
    old_keys = settings.payload_old_keys.get_secret_value() if settings.payload_old_keys else ""
    if settings.payload_key is None:
        if old_keys:
            raise PayloadKeyError("LEO_PAYLOAD_OLD_KEYS is set but LEO_PAYLOAD_KEY is not")
        return None
    keys = KeyRing.from_values(
        settings.payload_key.get_secret_value(), settings.payload_key_id, old_keys
    )
    return EncryptionCodec(keys)


class EncodedAttributesFailureConverter(LeoFailureConverter):
    """LEO's failure converter with the message and stack trace moved into an encoded (so
    encrypted) payload: they can quote SD data. The failure type stays readable."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """LEO's data converter (`leo.infra.failures`), encrypting through `codec` when there is one."""
    if codec is None:
        return LEO_DATA_CONVERTER
    return dataclasses.replace(
        LEO_DATA_CONVERTER,
        payload_codec=codec,
        failure_converter_class=EncodedAttributesFailureConverter,
    )
