"""Key material at rest: sealed under a key from a passphrase or from a master key file.

A key file (a node's ``node_key.pem`` and ``encryption_key``, a person's key files)
is either plain (PKCS#8 PEM for a signing key, p2pmed's one-line format for an
encryption key) or *sealed*: its secret is encrypted with AES-256-GCM under a
32-byte key that comes from what the operator supplies,

- a **passphrase** (read from a file, never from the command line): scrypt
  (RFC 7914) over it with a random salt and the costs recorded in the file;
- a **master key file** of at least 32 random bytes kept elsewhere (a mounted
  secret, a file an HSM exports): HKDF-SHA256 (RFC 5869) over its bytes with a
  random salt. No stretching: the file must already be random.

A sealed file is PEM-armoured canonical CBOR (label ``P2PMED SEALED KEY``)::

    {"header": {"version": 1,
                "key_type": "ed25519" | "x25519" | "mlkem768-x25519",
                "kdf": {"name": "scrypt", "salt": 16 bytes, "log2_n": 17, "r": 8, "p": 1}
                     | {"name": "hkdf-sha256", "salt": 16 bytes},
                "nonce": 12 bytes},
     "ciphertext": AES-256-GCM(secret) with the CBOR of "header" as associated data}

The secret is the raw private key: the Ed25519 seed (32 bytes), the X25519 key
(32), or the ML-KEM-768 seed and X25519 key (64 + 32), which is why this is not
PKCS#8. The header is authenticated, so a file whose costs, salt or key type were
changed does not open. Costs read from a file are bounded (``SCRYPT_*``) so that a
planted file cannot make a node spend gigabytes or hours deriving a key.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from p2pmed import codec

__all__ = [
    "KEY_SECRET_SIZES",
    "KeyFileError",
    "KeyFileLocked",
    "KeyProtection",
    "KeyProtectionFiles",
    "MasterKey",
    "Passphrase",
    "ScryptCost",
    "describe",
    "is_sealed",
    "key_type_of",
    "seal",
    "unseal",
]

FORMAT_VERSION = 1
KEY_SECRET_SIZES = {"ed25519": 32, "x25519": 32, "mlkem768-x25519": 96}
SALT_SIZE = 16
NONCE_SIZE = 12
SEALED_FILE_SIZE_MAX = 4096
PASSPHRASE_SIZE_MAX = 1024
MASTER_KEY_SIZE_MIN = 32
MASTER_KEY_SIZE_MAX = 4096
SCRYPT_LOG2_N_MIN, SCRYPT_LOG2_N_MAX = 10, 20
SCRYPT_R_MAX, SCRYPT_P_MAX = 16, 4
SCRYPT_MEMORY_BYTES_MAX = 512 << 20
_PEM_BEGIN = b"-----BEGIN P2PMED SEALED KEY-----"
_PEM_END = b"-----END P2PMED SEALED KEY-----"
_HKDF_INFO = b"p2pmed-sealed-key-v1"


class KeyFileError(Exception):
    """A key file that is missing, unsafe, encrypted under something else or not a key;
    or a passphrase or master key file that cannot be used."""


class KeyFileLocked(KeyFileError):
    """A sealed key file, and nothing given to open it with."""


# -- what the operator supplies -----------------------------------------------------------


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's costs: memory is 128 * r * 2**log2_n bytes (128 MiB by default), time grows with p too."""

    log2_n: int = 17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not SCRYPT_LOG2_N_MIN <= self.log2_n <= SCRYPT_LOG2_N_MAX:
            raise ValueError(f"scrypt log2_n must be {SCRYPT_LOG2_N_MIN}..{SCRYPT_LOG2_N_MAX}, got {self.log2_n}")
        if not 1 <= self.r <= SCRYPT_R_MAX or not 1 <= self.p <= SCRYPT_P_MAX:
            raise ValueError(f"scrypt r must be 1..{SCRYPT_R_MAX} and p 1..{SCRYPT_P_MAX}, got r={self.r} p={self.p}")
        if 128 * self.r << self.log2_n > SCRYPT_MEMORY_BYTES_MAX:
            raise ValueError(f"scrypt costs need more than {SCRYPT_MEMORY_BYTES_MAX >> 20} MiB")


@dataclass(frozen=True)
class Passphrase:
    """A passphrase; ``cost`` is what new seals use (opening uses the file's own)."""

    secret: bytes = field(repr=False)
    cost: ScryptCost = ScryptCost()

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the passphrase is empty")


@dataclass(frozen=True)
class MasterKey:
    """The bytes of a master key file."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MASTER_KEY_SIZE_MIN:
            raise ValueError(f"a master key must be at least {MASTER_KEY_SIZE_MIN} bytes, got {len(self.secret)}")


KeyProtection = Passphrase | MasterKey


@dataclass(frozen=True)
class KeyProtectionFiles:
    """Where the operator keeps the passphrase or the master key: at most one of the two."""

    passphrase_file: Path | None = None
    master_key_file: Path | None = None

    def __bool__(self) -> bool:
        return self.passphrase_file is not None or self.master_key_file is not None

    def read(self) -> KeyProtection | None:
        """The protection these files hold; None when neither is given. Raises ``KeyFileError``."""
        if self.passphrase_file is not None and self.master_key_file is not None:
            raise KeyFileError("give a passphrase file or a master key file, not both")
        if self.passphrase_file is not None:
            text = _read_secret_file(self.passphrase_file, "passphrase", PASSPHRASE_SIZE_MAX)
            passphrase = text.removesuffix(b"\n").removesuffix(b"\r")  # as `echo ... > file` writes it
            if not passphrase:
                raise KeyFileError(f"{self.passphrase_file}: the passphrase file is empty")
            return Passphrase(passphrase)
        if self.master_key_file is not None:
            secret = _read_secret_file(self.master_key_file, "master key", MASTER_KEY_SIZE_MAX)
            if len(secret) < MASTER_KEY_SIZE_MIN:
                raise KeyFileError(
                    f"{self.master_key_file}: a master key file needs at least {MASTER_KEY_SIZE_MIN} random bytes,"
                    f" it has {len(secret)}; make one with: head -c 32 /dev/urandom > FILE"
                )
            return MasterKey(secret)
        return None


def _read_secret_file(path: Path, what: str, size_max: int) -> bytes:
    try:
        with path.open("rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise KeyFileError(f"{path}: the {what} file is not a regular file")
            data = file.read(size_max + 1)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such {what} file") from None
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read the {what} file: {error.strerror}") from None
    if len(data) > size_max:
        raise KeyFileError(f"{path}: the {what} file is larger than {size_max} bytes")
    return data


# -- the sealed format --------------------------------------------------------------------


@dataclass(frozen=True)
class ScryptKdf:
    salt: bytes
    log2_n: int
    r: int
    p: int
    name: str = "scrypt"

    def __post_init__(self) -> None:
        if self.name != "scrypt" or len(self.salt) != SALT_SIZE:
            raise ValueError(f"expected name 'scrypt' and a {SALT_SIZE}-byte salt")
        ScryptCost(self.log2_n, self.r, self.p)


@dataclass(frozen=True)
class MasterKeyKdf:
    salt: bytes
    name: str = "hkdf-sha256"

    def __post_init__(self) -> None:
        if self.name != "hkdf-sha256" or len(self.salt) != SALT_SIZE:
            raise ValueError(f"expected name 'hkdf-sha256' and a {SALT_SIZE}-byte salt")


@dataclass(frozen=True)
class SealedHeader:
    version: int
    key_type: str
    kdf: ScryptKdf | MasterKeyKdf
    nonce: bytes

    def __post_init__(self) -> None:
        if self.key_type not in KEY_SECRET_SIZES:
            raise ValueError(f"unknown key type {self.key_type[:40]!r}")
        if len(self.nonce) != NONCE_SIZE:
            raise ValueError(f"the nonce must be {NONCE_SIZE} bytes")


@dataclass(frozen=True)
class SealedKey:
    header: SealedHeader
    ciphertext: bytes


def is_sealed(data: bytes) -> bool:
    """Whether a key file's bytes are in the sealed format (not whether they are valid)."""
    return data.lstrip().startswith(_PEM_BEGIN)


def seal(key_type: str, secret: bytes, protection: KeyProtection) -> bytes:
    """The sealed file for ``secret``, a private key of ``key_type``."""
    assert len(secret) == KEY_SECRET_SIZES[key_type], f"a {key_type} secret has {KEY_SECRET_SIZES[key_type]} bytes"
    salt = os.urandom(SALT_SIZE)
    kdf: ScryptKdf | MasterKeyKdf = (
        ScryptKdf(salt, protection.cost.log2_n, protection.cost.r, protection.cost.p)
        if isinstance(protection, Passphrase)
        else MasterKeyKdf(salt)
    )
    header = SealedHeader(FORMAT_VERSION, key_type, kdf, os.urandom(NONCE_SIZE))
    wrapping_key = _derive(kdf, protection)
    ciphertext = AESGCM(wrapping_key).encrypt(header.nonce, secret, codec.encode(header))
    body = base64.encodebytes(codec.encode(SealedKey(header, ciphertext)))
    return _PEM_BEGIN + b"\n" + body + _PEM_END + b"\n"


def unseal(data: bytes, protection: KeyProtection | None) -> tuple[str, bytes]:
    """The key type and secret of a sealed file. Raises ``KeyFileError`` (``KeyFileLocked``
    when ``protection`` is None) with a message that the caller prefixes with the path."""
    sealed = _parse(data)
    kdf = sealed.header.kdf
    if protection is None:
        raise KeyFileLocked(f"{_what_opens(kdf)}, and none was given")
    if isinstance(kdf, ScryptKdf) != isinstance(protection, Passphrase):
        given = "a passphrase" if isinstance(protection, Passphrase) else "a master key file"
        raise KeyFileError(f"{_what_opens(kdf)}, not {given}")
    try:
        secret = AESGCM(_derive(kdf, protection)).decrypt(
            sealed.header.nonce, sealed.ciphertext, codec.encode(sealed.header)
        )
    except InvalidTag:
        raise KeyFileError(f"does not open: wrong {_opener(kdf)}, or the file was altered") from None
    if len(secret) != KEY_SECRET_SIZES[sealed.header.key_type]:
        raise KeyFileError(f"holds a secret of {len(secret)} bytes, not a {sealed.header.key_type} key")
    return sealed.header.key_type, secret


def key_type_of(data: bytes) -> str:
    """The key type a sealed file says it holds, read without opening it."""
    return _parse(data).header.key_type


def describe(data: bytes) -> str:
    """How a key file's bytes are protected, for people: never a secret."""
    if not is_sealed(data):
        return "not encrypted"
    header = _parse(data).header
    kdf = header.kdf
    if isinstance(kdf, ScryptKdf):
        return f"{header.key_type} key, encrypted under a passphrase (scrypt log2_n={kdf.log2_n} r={kdf.r} p={kdf.p})"
    return f"{header.key_type} key, encrypted under a master key file (HKDF-SHA256)"


def _parse(data: bytes) -> SealedKey:
    if len(data) > SEALED_FILE_SIZE_MAX:
        raise KeyFileError(f"larger than {SEALED_FILE_SIZE_MAX} bytes: not a sealed key")
    lines = data.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _PEM_BEGIN or lines[-1].strip() != _PEM_END:
        raise KeyFileError("not a p2pmed sealed key (truncated, or not between its BEGIN and END lines)")
    try:
        encoded = base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
        value = codec.decode_value(encoded, SEALED_FILE_SIZE_MAX)
    except (binascii.Error, codec.CodecError) as error:
        raise KeyFileError(f"damaged sealed key: {error}") from None
    header = value.get("header") if isinstance(value, dict) else None
    version = header.get("version") if isinstance(header, dict) else None
    if isinstance(version, int) and version != FORMAT_VERSION:
        raise KeyFileError(f"sealed key format version {version}; this p2pmed reads version {FORMAT_VERSION}")
    try:
        sealed: SealedKey = codec.from_value(SealedKey, value, "sealed key")
    except codec.CodecError as error:
        raise KeyFileError(f"damaged sealed key: {error}") from None
    return sealed


def _derive(kdf: ScryptKdf | MasterKeyKdf, protection: KeyProtection) -> bytes:
    if isinstance(kdf, ScryptKdf):
        return Scrypt(salt=kdf.salt, length=32, n=1 << kdf.log2_n, r=kdf.r, p=kdf.p).derive(protection.secret)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=kdf.salt, info=_HKDF_INFO).derive(protection.secret)


def _opener(kdf: ScryptKdf | MasterKeyKdf) -> str:
    return "passphrase" if isinstance(kdf, ScryptKdf) else "master key file"


def _what_opens(kdf: ScryptKdf | MasterKeyKdf) -> str:
    return f"encrypted under a {_opener(kdf)}"
