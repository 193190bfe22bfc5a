"""Signatures, key files and record encryption."""

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmed import codec, crypto
from p2pmed.crypto import Kem, SignatureDomain, SigningKey
from p2pmed.ledger.errors import TxRejected
from p2pmed.ledger.tx import decode_transaction, sign_transaction

FAST = settings(max_examples=200, deadline=None)
KEY = SigningKey.from_seed(bytes(range(32)))
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))


# --- signatures ---------------------------------------------------------------


def test_signature_verifies_for_its_key_domain_chain_and_payload() -> None:
    signature = KEY.sign(SignatureDomain.PREPARE, "chain-a", b"payload")
    assert len(signature) == crypto.SIGNATURE_SIZE
    assert crypto.verify(KEY.public_key, signature, SignatureDomain.PREPARE, "chain-a", b"payload")


def test_signature_does_not_verify_for_another_key_or_payload() -> None:
    signature = KEY.sign(SignatureDomain.PREPARE, "chain-a", b"payload")
    assert not crypto.verify(OTHER_KEY.public_key, signature, SignatureDomain.PREPARE, "chain-a", b"payload")
    assert not crypto.verify(KEY.public_key, signature, SignatureDomain.PREPARE, "chain-a", b"payloaD")
    assert not crypto.verify(KEY.public_key, signature, SignatureDomain.PREPARE, "chain-a", b"")


@pytest.mark.parametrize("signed_for", list(SignatureDomain))
def test_signature_for_one_domain_does_not_verify_for_any_other(signed_for: SignatureDomain) -> None:
    signature = KEY.sign(signed_for, "chain-a", b"same bytes")
    for domain in SignatureDomain:
        assert crypto.verify(KEY.public_key, signature, domain, "chain-a", b"same bytes") == (domain is signed_for)


def test_signature_for_one_chain_does_not_verify_for_another() -> None:
    signature = KEY.sign(SignatureDomain.TRANSACTION, "chain-a", b"payload")
    assert not crypto.verify(KEY.public_key, signature, SignatureDomain.TRANSACTION, "chain-b", b"payload")
    assert not crypto.verify(KEY.public_key, signature, SignatureDomain.TRANSACTION, "chain-a ", b"payload")


def test_chain_id_and_payload_boundary_is_unambiguous() -> None:
    signature = KEY.sign(SignatureDomain.BLOCK, "ab", b"c")
    assert not crypto.verify(KEY.public_key, signature, SignatureDomain.BLOCK, "a", b"bc")


GOOD_SIGNATURE = KEY.sign(SignatureDomain.COMMIT, "c", b"p")


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (KEY.public_key[:31], GOOD_SIGNATURE),
        (KEY.public_key + b"\x00", GOOD_SIGNATURE),
        (b"", GOOD_SIGNATURE),
        (KEY.public_key, b""),
        (KEY.public_key, GOOD_SIGNATURE[:63]),
        (KEY.public_key, GOOD_SIGNATURE + b"\x00"),
        (b"\xff" * 32, GOOD_SIGNATURE),  # right length, not a usable point
    ],
)
def test_wrong_length_or_invalid_keys_and_signatures_return_false(public_key: bytes, signature: bytes) -> None:
    assert crypto.verify(KEY.public_key, GOOD_SIGNATURE, SignatureDomain.COMMIT, "c", b"p") is True
    assert crypto.verify(public_key, signature, SignatureDomain.COMMIT, "c", b"p") is False


@FAST
@given(st.binary(min_size=64, max_size=64))
def test_random_signature_does_not_verify(signature: bytes) -> None:
    assert not crypto.verify(KEY.public_key, signature, SignatureDomain.TRANSACTION, "c", b"p")


def test_signing_key_rebuilt_from_its_seed_has_the_same_public_key() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_seed(key.seed())
    assert again.public_key == key.public_key
    signature = again.sign(SignatureDomain.CHECKPOINT, "c", b"x")
    assert crypto.verify(key.public_key, signature, SignatureDomain.CHECKPOINT, "c", b"x")
    assert SigningKey.generate().public_key != key.public_key


def test_signing_key_seed_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SigningKey.from_seed(bytes(31))


def test_signing_key_repr_does_not_show_the_seed() -> None:
    assert KEY.seed().hex() not in repr(KEY)
    assert KEY.seed().hex()[:16] not in repr(KEY)


def test_no_single_bit_flip_of_a_signed_transaction_gives_a_valid_transaction() -> None:
    tx = sign_transaction(KEY, "c", "t", 0, {})
    data = tx.encoded
    assert decode_transaction(data).signature_is_valid()
    decoded_count = 0
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            other = decode_transaction(bytes(flipped))
        except TxRejected:
            continue
        decoded_count += 1
        assert other.id != tx.id
        assert not other.signature_is_valid(), f"flipping bit {bit} gave another validly signed transaction"
    assert decoded_count > 0  # the check above was exercised, e.g. for flips inside the signature


# --- key files ----------------------------------------------------------------


def test_saved_key_file_is_owner_only_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    crypto.save_signing_key(path, KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    assert crypto.load_signing_key(path).public_key == KEY.public_key


def test_saving_a_key_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    crypto.save_signing_key(path, KEY)
    before = path.read_bytes()
    with pytest.raises(crypto.KeyFileError, match="already exists"):
        crypto.save_signing_key(path, OTHER_KEY)
    assert path.read_bytes() == before
    assert crypto.load_signing_key(path).public_key == KEY.public_key


def test_an_encrypted_pkcs8_key_is_refused_saying_how_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(crypto.KeyFileError, match="encrypted PKCS#8 key, which p2pmed does not read"):
        crypto.load_signing_key(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644])
def test_key_file_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.key"
    crypto.save_signing_key(path, KEY)
    path.chmod(mode)
    with pytest.raises(crypto.KeyFileError, match="readable by others") as info:
        crypto.load_signing_key(path)
    assert f"mode {mode:o}" in str(info.value)


def test_missing_key_file_gives_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(crypto.KeyFileError, match="no such key file"):
        crypto.load_signing_key(tmp_path / "absent.key")


def test_directory_as_key_file_gives_key_file_error(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(crypto.KeyFileError, match="cannot read key file"):
        crypto.load_signing_key(tmp_path / "dir")


@pytest.mark.parametrize(
    "content",
    [b"not a key\n", b"", bytes(range(7, 71)), b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
    ids=["text", "empty", "binary", "empty-pem"],
)
def test_file_that_is_not_a_key_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(crypto.KeyFileError, match="not a PEM private key"):
        crypto.load_signing_key(path)


def test_key_file_holding_another_key_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    pem = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(crypto.KeyFileError, match="expected an Ed25519 key"):
        crypto.load_signing_key(path)


# --- HPKE key wrapping ------------------------------------------------------------


@pytest.fixture(scope="module", params=list(Kem))
def reader(request: pytest.FixtureRequest) -> crypto.EncryptionPrivateKey:
    return crypto.EncryptionPrivateKey.generate(request.param)


def test_a_sealed_secret_opens_for_its_recipient(reader: crypto.EncryptionPrivateKey) -> None:
    data_key = os.urandom(32)
    wrapped = crypto.seal_to(reader.public_key, data_key, b"record-1")
    assert data_key not in wrapped
    assert crypto.open_sealed(wrapped, reader, b"record-1") == data_key
    assert crypto.seal_to(reader.public_key, data_key, b"record-1") != wrapped  # fresh encapsulation


def test_opening_with_another_key_raises_crypto_error(reader: crypto.EncryptionPrivateKey) -> None:
    wrapped = crypto.seal_to(reader.public_key, os.urandom(32), b"record-1")
    for kem in Kem:
        with pytest.raises(crypto.CryptoError, match="does not open"):
            crypto.open_sealed(wrapped, crypto.EncryptionPrivateKey.generate(kem), b"record-1")


def test_opening_for_another_purpose_raises_crypto_error(reader: crypto.EncryptionPrivateKey) -> None:
    wrapped = crypto.seal_to(reader.public_key, os.urandom(32), b"record-1")
    for record_id in (b"record-2", b"record-", b"record-1\x00", b""):
        with pytest.raises(crypto.CryptoError, match="for this purpose"):
            crypto.open_sealed(wrapped, reader, record_id)


def test_opening_a_tampered_or_truncated_seal_raises_crypto_error(reader: crypto.EncryptionPrivateKey) -> None:
    wrapped = crypto.seal_to(reader.public_key, os.urandom(32), b"record-1")
    for index in (0, len(wrapped) // 2, len(wrapped) - 1):
        tampered = bytearray(wrapped)
        tampered[index] ^= 0x01
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(bytes(tampered), reader, b"record-1")
    for cut in (wrapped[:-1], wrapped[:10], b""):
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(cut, reader, b"record-1")


def test_sealing_to_a_low_order_x25519_key_raises_crypto_error() -> None:
    with pytest.raises(crypto.CryptoError, match="x25519"):
        crypto.seal_to(crypto.EncryptionPublicKey(Kem.X25519, bytes(32)), os.urandom(32), b"record-1")


def test_encryption_public_key_round_trips_through_the_codec(reader: crypto.EncryptionPrivateKey) -> None:
    public = reader.public_key
    data = codec.encode(public)
    assert codec.decode(crypto.EncryptionPublicKey, data, 4096) == public
    assert codec.decode_value(data, 4096) == {"kem": reader.kem.value, "key": public.key}


def test_encryption_public_key_of_the_wrong_size_is_rejected_by_the_codec() -> None:
    data = codec.encode({"kem": "mlkem768-x25519", "key": bytes(32)})
    with pytest.raises(codec.CodecError, match="must be 1216 bytes, got 32") as info:
        codec.decode(crypto.EncryptionPublicKey, data, 4096)
    assert info.value.path == "EncryptionPublicKey"
    with pytest.raises(codec.CodecError, match="unknown value 'rsa'"):
        codec.decode(crypto.EncryptionPublicKey, codec.encode({"kem": "rsa", "key": bytes(32)}), 4096)


def test_encryption_private_key_rebuilt_from_its_secret_has_the_same_public_key(
    reader: crypto.EncryptionPrivateKey,
) -> None:
    rebuilt = crypto.EncryptionPrivateKey(reader.kem, reader.secret())
    assert rebuilt.public_key == reader.public_key
    wrapped = crypto.seal_to(reader.public_key, b"k" * 32, b"r")
    assert crypto.open_sealed(wrapped, rebuilt, b"r") == b"k" * 32
    assert reader.secret().hex() not in repr(reader)


def test_public_key_sizes_match_the_kem() -> None:
    assert len(crypto.EncryptionPrivateKey.generate(Kem.X25519).public_key.key) == 32
    assert len(crypto.EncryptionPrivateKey.generate(Kem.MLKEM768_X25519).public_key.key) == 1184 + 32
    with pytest.raises(ValueError, match="must be 96 bytes"):
        crypto.EncryptionPrivateKey(Kem.MLKEM768_X25519, bytes(32))


# --- record encryption ----------------------------------------------------------


def test_record_round_trips_through_encrypt_and_decrypt() -> None:
    data_key, sealed = crypto.encrypt_record(b"record-1", b"HbA1c 6.1 %")
    assert len(data_key) == crypto.DATA_KEY_SIZE
    assert b"HbA1c" not in sealed
    assert crypto.decrypt_record(b"record-1", sealed, data_key) == b"HbA1c 6.1 %"


def test_empty_record_round_trips() -> None:
    data_key, sealed = crypto.encrypt_record(b"r", b"")
    assert crypto.decrypt_record(b"r", sealed, data_key) == b""


def test_each_encryption_uses_a_fresh_key_and_nonce() -> None:
    key_a, sealed_a = crypto.encrypt_record(b"r", b"same")
    key_b, sealed_b = crypto.encrypt_record(b"r", b"same")
    assert key_a != key_b
    assert sealed_a[: crypto.NONCE_SIZE] != sealed_b[: crypto.NONCE_SIZE]


def test_tampered_sealed_record_raises_crypto_error() -> None:
    data_key, sealed = crypto.encrypt_record(b"record-1", b"HbA1c 6.1 %")
    for index in range(len(sealed)):  # nonce, ciphertext and tag
        tampered = bytearray(sealed)
        tampered[index] ^= 0x80
        with pytest.raises(crypto.CryptoError, match="does not decrypt"):
            crypto.decrypt_record(b"record-1", bytes(tampered), data_key)
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt_record(b"record-1", sealed[:-1], data_key)
    with pytest.raises(crypto.CryptoError, match="too short"):
        crypto.decrypt_record(b"record-1", sealed[: crypto.NONCE_SIZE + 15], data_key)


def test_sealed_record_for_another_record_id_raises_crypto_error() -> None:
    data_key, sealed = crypto.encrypt_record(b"record-1", b"HbA1c 6.1 %")
    with pytest.raises(crypto.CryptoError, match="wrong record id"):
        crypto.decrypt_record(b"record-2", sealed, data_key)


def test_sealed_record_with_another_key_raises_crypto_error() -> None:
    data_key, sealed = crypto.encrypt_record(b"record-1", b"HbA1c 6.1 %")
    other = bytes(b ^ 1 for b in data_key)
    with pytest.raises(crypto.CryptoError, match="wrong key"):
        crypto.decrypt_record(b"record-1", sealed, other)
    with pytest.raises(crypto.CryptoError, match="must be 32 bytes"):
        crypto.decrypt_record(b"record-1", sealed, data_key[:16])


def test_record_key_sealed_for_a_reader_opens_the_record(reader: crypto.EncryptionPrivateKey) -> None:
    data_key, sealed = crypto.encrypt_record(b"record-9", b"lab result")
    wrapped = crypto.seal_to(reader.public_key, data_key, b"record-9")
    assert crypto.decrypt_record(b"record-9", sealed, crypto.open_sealed(wrapped, reader, b"record-9")) == b"lab result"
