"""Keys, signatures and record encryption.

Signatures are Ed25519 over a domain-separated message: the canonical CBOR of
``["p2pmed-signature-v1", domain, chain_id, payload]``. A signature made for one
kind of object (a transaction, a prepare vote, a checkpoint...) or for one chain
therefore never verifies as another, even over identical payload bytes.

Health records are sealed with AES-256-GCM under a fresh random data key, with
the record id as associated data so a ciphertext cannot be passed off as another
record. The plaintext is first padded (ISO/IEC 7816-4: a 0x80 byte, then zeros)
to a Padmé length (Nikitin et al., "Reducing Metadata Leakage from Encrypted
Files and Communication with PURBs", PETS 2019): at most 12 % larger, and the
length on the ledger tells only its order of magnitude. Secrets for a reader
(a data key, a key share, a sealed reason) are sealed to its key with HPKE (RFC
9180, base mode, HKDF-SHA256, AES-256-GCM), with X25519 by default or the
ML-KEM-768 + X25519 hybrid KEM for post-quantum protection; what it is for and
the record id are bound in, as the HPKE ``info``.
"""

from __future__ import annotations

import enum
import functools
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from p2pmed import codec, keys_at_rest
from p2pmed.keys_at_rest import KeyFileError, KeyProtection

__all__ = [
    "CryptoError",
    "Ed25519Verifier",
    "EncryptionPrivateKey",
    "EncryptionPublicKey",
    "Kem",
    "KeyFileError",
    "SignatureDomain",
    "Signer",
    "SigningKey",
    "Verifier",
    "decrypt_record",
    "encrypt_record",
    "load_encryption_key",
    "load_signing_key",
    "open_sealed",
    "save_encryption_key",
    "save_signing_key",
    "seal_to",
    "verify",
]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
DATA_KEY_SIZE = 32
NONCE_SIZE = 12
_SIGNATURE_CONTEXT = "p2pmed-signature-v1"
_ED25519 = "ed25519"


class CryptoError(Exception):
    """A ciphertext, wrapped key or key that does not open with what was given."""


class SignatureDomain(enum.StrEnum):
    """What a signature is for; part of every signed message."""

    TRANSACTION = "transaction"
    BLOCK = "block"
    PRE_PREPARE = "pre-prepare"
    PREPARE = "prepare"
    COMMIT = "commit"
    CHECKPOINT = "checkpoint"
    VIEW_CHANGE = "view-change"
    NEW_VIEW = "new-view"
    RECORD_FETCH = "record-fetch"
    KEY_ROTATION = "key-rotation"
    SITE_AUDIT = "site-audit"
    VALIDATOR_JOIN = "validator-join"


def _signed_message(domain: SignatureDomain, chain_id: str, payload: bytes) -> bytes:
    return codec.encode([_SIGNATURE_CONTEXT, domain.value, chain_id, payload])


class Signer(Protocol):
    """What signs consensus messages: a ``SigningKey``, or the simulator's fast stand-in."""

    public_key: bytes

    def sign(self, domain: SignatureDomain, chain_id: str, payload: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(
        self, public_key: bytes, signature: bytes, domain: SignatureDomain, chain_id: str, payload: bytes
    ) -> bool: ...


class SigningKey:
    """An Ed25519 identity key: a validator's, a site's or a person's."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key: bytes = key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """A key from 32 seed bytes; the simulator derives its keys this way."""
        if len(seed) != 32:
            raise ValueError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        return self._key.private_bytes_raw()

    def sign(self, domain: SignatureDomain, chain_id: str, payload: bytes) -> bytes:
        return self._key.sign(_signed_message(domain, chain_id, payload))

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()[:16]}…)"


@functools.lru_cache(maxsize=4096)
def _load_public_key(public_key: bytes) -> ed25519.Ed25519PublicKey | None:
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return None


def verify(public_key: bytes, signature: bytes, domain: SignatureDomain, chain_id: str, payload: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s over this domain, chain and payload."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    key = _load_public_key(bytes(public_key))
    if key is None:
        return False
    try:
        key.verify(signature, _signed_message(domain, chain_id, payload))
    except InvalidSignature:
        return False
    return True


class Ed25519Verifier:
    """``verify`` as a ``Verifier`` object, for code that takes the scheme as a parameter."""

    def verify(
        self, public_key: bytes, signature: bytes, domain: SignatureDomain, chain_id: str, payload: bytes
    ) -> bool:
        return verify(public_key, signature, domain, chain_id, payload)


def save_signing_key(path: Path, key: SigningKey, protection: KeyProtection | None = None) -> None:
    """Write ``key``, readable by the owner only, never overwriting: as PKCS#8 PEM, or
    sealed under ``protection`` (``p2pmed.keys_at_rest``)."""
    if protection is not None:
        data = keys_at_rest.seal(_ED25519, key.seed(), protection)
    else:
        data = key._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    _write_private_file(path, data)


def _write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and ``data``, durably; never overwrite."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _read_private_file(path: Path) -> bytes:
    """The bytes of a key file that only its owner can read; else ``KeyFileError``."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read key file: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: key file is readable by others (mode {mode & 0o777:o}); run chmod 600 {path}")
    return data


def _unsealed(
    path: Path, data: bytes, protection: KeyProtection | None, key_types: Collection[str]
) -> tuple[str, bytes] | None:
    """The key type and secret of a sealed key file of one of ``key_types``; None for a plain one,
    which ``protection`` must then be None for: a home is all sealed or all plain."""
    if not keys_at_rest.is_sealed(data):
        if protection is not None:
            raise KeyFileError(
                f"{path}: not encrypted, but a passphrase or master key file was given; encrypt it first"
                " (p2pmed keys encrypt), or give none"
            )
        return None
    try:
        key_type, secret = keys_at_rest.unseal(data, protection)
    except KeyFileError as error:
        raise type(error)(f"{path}: {error}") from None
    if key_type not in key_types:
        raise KeyFileError(f"{path}: holds a sealed {key_type} key, not {' or '.join(sorted(key_types))}")
    return key_type, secret


def load_signing_key(path: Path, protection: KeyProtection | None = None) -> SigningKey:
    """Read a key written by ``save_signing_key`` (sealed ones with ``protection``);
    refuse files others can read."""
    data = _read_private_file(path)
    sealed = _unsealed(path, data, protection, {_ED25519})
    if sealed is not None:
        return SigningKey.from_seed(sealed[1])
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(
            f"{path}: an encrypted PKCS#8 key, which p2pmed does not read; decrypt it (openssl pkey) and"
            " seal it with p2pmed keys encrypt"
        ) from None
    except ValueError:
        raise KeyFileError(f"{path}: not a PEM private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
    return SigningKey(key)


class Kem(enum.StrEnum):
    """HPKE key encapsulation mechanisms a reader's encryption key may use."""

    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"


_HPKE_KEMS = {Kem.X25519: hpke.KEM.X25519, Kem.MLKEM768_X25519: hpke.KEM.MLKEM768_X25519}
_MLKEM768_PUBLIC_SIZE = 1184
_MLKEM_SEED_SIZE = 64
_X25519_SIZE = 32


@functools.cache
def _suite(kem: Kem) -> hpke.Suite:
    return hpke.Suite(_HPKE_KEMS[kem], hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


@dataclass(frozen=True)
class EncryptionPublicKey:
    """A reader's public encryption key as published on the ledger."""

    kem: Kem
    key: bytes

    def __post_init__(self) -> None:
        expected = _X25519_SIZE if self.kem is Kem.X25519 else _MLKEM768_PUBLIC_SIZE + _X25519_SIZE
        if len(self.key) != expected:
            raise ValueError(f"{self.kem} public key must be {expected} bytes, got {len(self.key)}")

    def _hpke_key(self) -> x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey:
        try:
            if self.kem is Kem.X25519:
                return x25519.X25519PublicKey.from_public_bytes(self.key)
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(self.key[:_MLKEM768_PUBLIC_SIZE]),
                x25519.X25519PublicKey.from_public_bytes(self.key[_MLKEM768_PUBLIC_SIZE:]),
            )
        except ValueError as error:
            raise CryptoError(f"invalid {self.kem} public key: {error}") from None


class EncryptionPrivateKey:
    """A reader's private encryption key (X25519, or ML-KEM-768 seed + X25519)."""

    __slots__ = ("_hpke_key", "_secret", "kem", "public_key")

    def __init__(self, kem: Kem, secret: bytes) -> None:
        self.kem = kem
        self._secret = secret
        if kem is Kem.X25519:
            x_key = x25519.X25519PrivateKey.from_private_bytes(secret)
            self._hpke_key: x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey = x_key
            public = x_key.public_key().public_bytes_raw()
        else:
            if len(secret) != _MLKEM_SEED_SIZE + _X25519_SIZE:
                raise ValueError(f"{kem} secret must be {_MLKEM_SEED_SIZE + _X25519_SIZE} bytes")
            m_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(secret[:_MLKEM_SEED_SIZE])
            x_key = x25519.X25519PrivateKey.from_private_bytes(secret[_MLKEM_SEED_SIZE:])
            self._hpke_key = hpke.MLKEM768X25519PrivateKey(m_key, x_key)
            public = m_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw()
        self.public_key = EncryptionPublicKey(kem, public)

    @classmethod
    def generate(cls, kem: Kem = Kem.X25519) -> EncryptionPrivateKey:
        size = _X25519_SIZE if kem is Kem.X25519 else _MLKEM_SEED_SIZE + _X25519_SIZE
        return cls(kem, os.urandom(size))

    def secret(self) -> bytes:
        return self._secret

    def __repr__(self) -> str:
        return f"EncryptionPrivateKey(kem={self.kem.value})"


_ENCRYPTION_KEY_FILE_HEADER = b"p2pmed encryption key v1 "


def save_encryption_key(path: Path, key: EncryptionPrivateKey, protection: KeyProtection | None = None) -> None:
    """Write ``key``, mode 0600, never overwriting: one line (a header, the KEM, the secret
    in hex), or sealed under ``protection`` (``p2pmed.keys_at_rest``)."""
    if protection is not None:
        data = keys_at_rest.seal(key.kem.value, key.secret(), protection)
    else:
        data = _ENCRYPTION_KEY_FILE_HEADER + f"{key.kem.value} {key.secret().hex()}\n".encode()
    _write_private_file(path, data)


def load_encryption_key(path: Path, protection: KeyProtection | None = None) -> EncryptionPrivateKey:
    data = _read_private_file(path)
    sealed = _unsealed(path, data, protection, {kem.value for kem in Kem})
    if sealed is not None:
        return EncryptionPrivateKey(Kem(sealed[0]), sealed[1])
    try:
        kem, secret = data.removeprefix(_ENCRYPTION_KEY_FILE_HEADER).decode().split()
        return EncryptionPrivateKey(Kem(kem), bytes.fromhex(secret))
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{path}: not a p2pmed encryption key file") from None


PADDED_SIZE_MIN = 256
PADDED_SIZE_MAX = (1 << 20) - (1 << 14)
"""The largest Padmé length below 1 MiB: a sealed record stays under 1 MiB."""
SEAL_OVERHEAD = NONCE_SIZE + 16
PLAINTEXT_SIZE_MAX = PADDED_SIZE_MAX - 1


def padme(length: int) -> int:
    """The Padmé length for ``length`` bytes (at least ``PADDED_SIZE_MIN``): keep the top
    ⌊log2 ⌊log2 L⌋⌋ + 1 bits of L and round the rest up."""
    length = max(length, PADDED_SIZE_MIN)
    exponent = length.bit_length() - 1
    low_bits = exponent - exponent.bit_length()
    mask = (1 << low_bits) - 1
    return (length + mask) & ~mask


def is_padded_sealed_size(size: int) -> bool:
    """Whether ``size`` is the size of a sealed record whose plaintext was padded as ``encrypt_record`` does."""
    padded = size - SEAL_OVERHEAD
    return PADDED_SIZE_MIN <= padded <= PADDED_SIZE_MAX and padme(padded) == padded


def encrypt_record(record_id: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """Pad and seal a record under a fresh data key; returns ``(data_key, nonce || ciphertext)``."""
    if len(plaintext) > PLAINTEXT_SIZE_MAX:
        raise ValueError(f"a record holds at most {PLAINTEXT_SIZE_MAX} bytes, this one has {len(plaintext)}")
    padded = plaintext + b"\x80" + bytes(padme(len(plaintext) + 1) - len(plaintext) - 1)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_SIZE)
    return data_key, nonce + AESGCM(data_key).encrypt(nonce, padded, record_id)


def decrypt_record(record_id: bytes, sealed: bytes, data_key: bytes) -> bytes:
    if len(data_key) != DATA_KEY_SIZE:
        raise CryptoError(f"data key must be {DATA_KEY_SIZE} bytes, got {len(data_key)}")
    if len(sealed) < NONCE_SIZE + 16:
        raise CryptoError("sealed record is too short to hold a nonce and a tag")
    try:
        padded = AESGCM(data_key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], record_id)
    except InvalidTag:
        raise CryptoError("record does not decrypt: wrong key, wrong record id or tampered ciphertext") from None
    unpadded = padded.rstrip(b"\x00")
    if not unpadded.endswith(b"\x80"):
        raise CryptoError("record decrypts but is not padded as encrypt_record pads")
    return unpadded[:-1]


def seal_to(recipient: EncryptionPublicKey, plaintext: bytes, info: bytes) -> bytes:
    """HPKE-seal ``plaintext`` to ``recipient``, bound to ``info`` (what it is, and for what)."""
    hpke_key = recipient._hpke_key()
    try:
        return _suite(recipient.kem).encrypt(plaintext, hpke_key, info=info)
    except ValueError as error:  # e.g. a low-order X25519 point: no usable shared secret
        raise CryptoError(f"cannot seal to this {recipient.kem} public key: {error}") from None


def open_sealed(sealed: bytes, recipient: EncryptionPrivateKey, info: bytes) -> bytes:
    try:
        return _suite(recipient.kem).decrypt(sealed, recipient._hpke_key, info=info)
    except (InvalidTag, ValueError) as error:
        raise CryptoError(f"does not open with this {recipient.kem} key for this purpose: {error}") from None
