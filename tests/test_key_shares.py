"""Splitting a record's data key among custodians, and padding what is sealed."""

from __future__ import annotations

import itertools
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmed import crypto
from p2pmed.key_shares import SHARE_WRAP_SIZE_MAX, combine, share_digest, split, unwrap_share, wrap_share

RECORD = b"r" * 32


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 6).flatmap(lambda count: st.tuples(st.integers(1, count), st.just(count))))
def test_any_threshold_of_the_shares_rebuild_the_key_and_fewer_do_not(shape: tuple[int, int]) -> None:
    threshold, count = shape
    data_key = os.urandom(32)
    shares = split(data_key, threshold, count)
    assert len(shares) == count
    for chosen in itertools.combinations(range(count), threshold):
        assert combine({index + 1: shares[index] for index in chosen}) == data_key
    if threshold > 1:  # (with threshold 1 every share is the key itself: a polynomial of degree 0)
        assert len(set(shares)) == count
        assert combine({index + 1: shares[index] for index in range(threshold - 1)}) != data_key


@pytest.mark.parametrize(("threshold", "count"), [(0, 3), (4, 3), (1, 256)])
def test_split_refuses_an_impossible_threshold(threshold: int, count: int) -> None:
    with pytest.raises(ValueError, match="threshold"):
        split(os.urandom(32), threshold, count)


def test_digests_differ_by_record_index_and_share() -> None:
    share = os.urandom(32)
    digests = {share_digest(RECORD, 1, share), share_digest(b"s" * 32, 1, share), share_digest(RECORD, 2, share)}
    assert len(digests) == 3 and share_digest(RECORD, 1, share) == share_digest(RECORD, 1, bytes(share))


@pytest.mark.parametrize("kem", list(crypto.Kem))
def test_a_sealed_share_opens_only_for_its_recipient_and_record(kem: crypto.Kem) -> None:
    reader, other = crypto.EncryptionPrivateKey.generate(kem), crypto.EncryptionPrivateKey.generate(kem)
    share = os.urandom(32)
    sealed = wrap_share(share, 3, reader.public_key, RECORD)
    assert len(sealed) <= SHARE_WRAP_SIZE_MAX and unwrap_share(sealed, reader, RECORD) == (3, share)
    for key, record in ((other, RECORD), (reader, b"s" * 32)):
        with pytest.raises(crypto.CryptoError):
            unwrap_share(sealed, key, record)
    with pytest.raises(crypto.CryptoError):
        unwrap_share(sealed[:-1], reader, RECORD)
    with pytest.raises(crypto.CryptoError, match="at most"):
        unwrap_share(bytes(SHARE_WRAP_SIZE_MAX + 1), reader, RECORD)


def test_a_secret_sealed_for_another_purpose_is_not_taken_for_a_share() -> None:
    reader = crypto.EncryptionPrivateKey.generate()
    with pytest.raises(crypto.CryptoError):
        unwrap_share(crypto.seal_to(reader.public_key, os.urandom(32), RECORD), reader, RECORD)


@given(st.integers(1, crypto.PADDED_SIZE_MAX + 100_000))
def test_padme_lengths_are_fixed_points_and_at_most_12_percent_longer(length: int) -> None:
    padded = crypto.padme(length)
    assert padded >= max(length, crypto.PADDED_SIZE_MIN) and crypto.padme(padded) == padded
    assert padded <= max(length, crypto.PADDED_SIZE_MIN) * 1.12


@pytest.mark.parametrize("length", [0, 1, 255, 256, 1000, 4097, 70_000, crypto.PLAINTEXT_SIZE_MAX])
def test_sealed_records_have_padded_sizes_and_round_trip(length: int) -> None:
    plaintext = os.urandom(length)
    data_key, sealed = crypto.encrypt_record(RECORD, plaintext)
    assert crypto.is_padded_sealed_size(len(sealed)) and crypto.decrypt_record(RECORD, sealed, data_key) == plaintext


def test_records_of_nearby_lengths_seal_to_the_same_size() -> None:
    sizes = {len(crypto.encrypt_record(RECORD, bytes(length))[1]) for length in range(4000, 4090)}
    assert len(sizes) == 1


def test_a_record_too_big_to_pad_is_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        crypto.encrypt_record(RECORD, bytes(crypto.PLAINTEXT_SIZE_MAX + 1))
    assert not crypto.is_padded_sealed_size(crypto.padme(crypto.PADDED_SIZE_MAX + 1) + crypto.SEAL_OVERHEAD)


def test_a_sealed_plaintext_without_padding_is_refused() -> None:
    data_key, nonce = os.urandom(32), os.urandom(crypto.NONCE_SIZE)
    unpadded = nonce + AESGCM(data_key).encrypt(nonce, b"no marker here" + bytes(10), RECORD)
    with pytest.raises(crypto.CryptoError, match="not padded"):
        crypto.decrypt_record(RECORD, unpadded, data_key)
