"""Key files at rest: sealed under a passphrase or a master key file, opened only with it,
refused when damaged, converted in place without ever losing a key (``p2pmed keys``),
and a node home that is encrypted, from ``p2pmed init`` to a running ``p2pmed node``."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import cbor2
import pytest
from click.testing import CliRunner, Result

from p2pmed import crypto, keys_at_rest
from p2pmed.cli.main import cli
from p2pmed.crypto import EncryptionPrivateKey, Kem, KeyFileError, SigningKey
from p2pmed.keys_at_rest import KeyFileLocked, KeyProtectionFiles, MasterKey, Passphrase, ScryptCost
from p2pmed.site import key_files
from p2pmed.site.config import ConfigError, NodeConfig, load_config
from p2pmed.site.home import CONFIG, ENCRYPTION_KEY, NODE_KEY, create_testnet, load_home
from p2pmed.testing.process_network import ProcessNetwork

CHEAP = ScryptCost(log2_n=10, r=8, p=1)  # the lowest cost a file may name: fast tests
PASSPHRASE = Passphrase(b"correct horse battery staple", CHEAP)
OTHER_PASSPHRASE = Passphrase(b"Tr0ub4dor&3", CHEAP)
WAIT_S = 60.0
MASTER_KEY = MasterKey(bytes(range(32)))
OTHER_MASTER_KEY = MasterKey(bytes(range(1, 33)))
SIGNING_KEY = SigningKey.generate()
ENCRYPTION_KEYS = [EncryptionPrivateKey.generate(Kem.X25519), EncryptionPrivateKey.generate(Kem.MLKEM768_X25519)]


def sealed_signing_key(directory: Path, protection: keys_at_rest.KeyProtection) -> Path:
    path = directory / "signing.pem"
    crypto.save_signing_key(path, SIGNING_KEY, protection)
    return path


# -- the sealed format ------------------------------------------------------------------------


@pytest.mark.parametrize("protection", [PASSPHRASE, MASTER_KEY], ids=["passphrase", "master-key"])
def test_a_sealed_signing_key_opens_only_with_what_sealed_it_and_holds_no_plain_secret(
    tmp_path: Path, protection: keys_at_rest.KeyProtection
) -> None:
    path = sealed_signing_key(tmp_path, protection)
    data = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert data.startswith(b"-----BEGIN P2PMED SEALED KEY-----\n")
    assert SIGNING_KEY.seed() not in data and SIGNING_KEY.seed() not in base64.decodebytes(
        b"".join(data.split(b"\n")[1:-2])
    )
    assert crypto.load_signing_key(path, protection).public_key == SIGNING_KEY.public_key


@pytest.mark.parametrize("key", ENCRYPTION_KEYS, ids=["x25519", "mlkem768-x25519"])
@pytest.mark.parametrize("protection", [PASSPHRASE, MASTER_KEY], ids=["passphrase", "master-key"])
def test_a_sealed_encryption_key_of_either_kem_round_trips(
    tmp_path: Path, key: EncryptionPrivateKey, protection: keys_at_rest.KeyProtection
) -> None:
    path = tmp_path / "encryption_key"
    crypto.save_encryption_key(path, key, protection)
    assert key.secret().hex().encode() not in path.read_bytes()
    loaded = crypto.load_encryption_key(path, protection)
    assert (loaded.kem, loaded.secret()) == (key.kem, key.secret())


def test_the_passphrase_costs_are_recorded_in_the_file_and_the_default_is_scrypt_2_17_r8_p1(tmp_path: Path) -> None:
    assert ScryptCost() == ScryptCost(log2_n=17, r=8, p=1)
    path = sealed_signing_key(tmp_path, Passphrase(b"pw", ScryptCost(log2_n=11, r=4, p=2)))
    assert keys_at_rest.describe(path.read_bytes()) == (
        "ed25519 key, encrypted under a passphrase (scrypt log2_n=11 r=4 p=2)"
    )
    assert crypto.load_signing_key(path, Passphrase(b"pw")).public_key == SIGNING_KEY.public_key  # the file's costs


@pytest.mark.parametrize(
    ("sealed_with", "opened_with", "message"),
    [
        (PASSPHRASE, OTHER_PASSPHRASE, "does not open: wrong passphrase, or the file was altered"),
        (MASTER_KEY, OTHER_MASTER_KEY, "does not open: wrong master key file, or the file was altered"),
        (PASSPHRASE, MASTER_KEY, "encrypted under a passphrase, not a master key file"),
        (MASTER_KEY, PASSPHRASE, "encrypted under a master key file, not a passphrase"),
        (PASSPHRASE, None, "encrypted under a passphrase, and none was given"),
    ],
)
def test_a_sealed_key_opened_with_anything_else_is_refused_saying_what_it_needs(
    tmp_path: Path,
    sealed_with: keys_at_rest.KeyProtection,
    opened_with: keys_at_rest.KeyProtection | None,
    message: str,
) -> None:
    path = sealed_signing_key(tmp_path, sealed_with)
    with pytest.raises(KeyFileError, match=message) as error:
        crypto.load_signing_key(path, opened_with)
    assert str(error.value).startswith(f"{path}: ")
    assert isinstance(error.value, KeyFileLocked) == (opened_with is None)


def test_a_plain_key_given_a_passphrase_is_refused_rather_than_mixed(tmp_path: Path) -> None:
    path = tmp_path / "plain.pem"
    crypto.save_signing_key(path, SIGNING_KEY)
    with pytest.raises(KeyFileError, match="not encrypted, but a passphrase or master key file was given"):
        crypto.load_signing_key(path, PASSPHRASE)


def test_a_sealed_key_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "encryption_key"
    crypto.save_encryption_key(path, ENCRYPTION_KEYS[0], MASTER_KEY)
    with pytest.raises(KeyFileError, match="holds a sealed x25519 key, not ed25519"):
        crypto.load_signing_key(path, MASTER_KEY)


def test_a_sealed_key_readable_by_others_is_refused_like_a_plain_one(tmp_path: Path) -> None:
    path = sealed_signing_key(tmp_path, MASTER_KEY)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        crypto.load_signing_key(path, MASTER_KEY)


def _reencoded(data: bytes, change: dict[str, object]) -> bytes:
    """The sealed file ``data`` with header fields replaced, armoured again."""
    body = cbor2.loads(base64.decodebytes(b"".join(data.split(b"\n")[1:-2])))
    body["header"].update(change)
    encoded = base64.encodebytes(cbor2.dumps(body, canonical=True))
    return b"-----BEGIN P2PMED SEALED KEY-----\n" + encoded + b"-----END P2PMED SEALED KEY-----\n"


def _flip_ciphertext_bit(data: bytes) -> bytes:
    body = cbor2.loads(base64.decodebytes(b"".join(data.split(b"\n")[1:-2])))
    body["ciphertext"] = bytes([body["ciphertext"][0] ^ 1]) + body["ciphertext"][1:]
    encoded = base64.encodebytes(cbor2.dumps(body, canonical=True))
    return b"-----BEGIN P2PMED SEALED KEY-----\n" + encoded + b"-----END P2PMED SEALED KEY-----\n"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[: len(d) // 2], "truncated, or not between its BEGIN and END lines"),
        (lambda d: d.replace(b"\n", b"\n!", 1), "damaged sealed key"),
        (_flip_ciphertext_bit, "does not open: wrong passphrase, or the file was altered"),
        (lambda d: _reencoded(d, {"kdf": {**_kdf(d), "log2_n": 11}}), "does not open: wrong passphrase"),
        (lambda d: _reencoded(d, {"kdf": {**_kdf(d), "salt": bytes(16)}}), "does not open: wrong passphrase"),
        (lambda d: _reencoded(d, {"kdf": {**_kdf(d), "log2_n": 40}}), "log2_n must be 10..20"),
        (lambda d: _reencoded(d, {"kdf": {**_kdf(d), "r": 1 << 20}}), "scrypt r must be"),
        (lambda d: _reencoded(d, {"key_type": "x25519"}), "does not open: wrong passphrase"),
        (lambda d: _reencoded(d, {"key_type": "rsa"}), "unknown key type 'rsa'"),
        (lambda d: _reencoded(d, {"version": 2}), "sealed key format version 2; this p2pmed reads version 1"),
        (lambda d: _reencoded(d, {"extra": 1}), "unknown field 'extra'"),
        (
            lambda d: b"-----BEGIN P2PMED SEALED KEY-----\n" + base64.encodebytes(os.urandom(90)) + d[-32:],
            "damaged sealed key",
        ),
        (lambda d: d + b"A" * 5000, "larger than 4096 bytes"),
    ],
    ids=[
        "truncated",
        "garbled-base64",
        "ciphertext-bit",
        "cost-lowered",
        "salt-changed",
        "cost-huge",
        "r-huge",
        "key-type-swapped",
        "foreign-key-type",
        "future-version",
        "unknown-field",
        "foreign-bytes",
        "oversized",
    ],
)
def test_a_truncated_garbled_or_foreign_sealed_file_is_refused_and_nothing_is_derived_from_planted_costs(
    tmp_path: Path, damage: object, message: str
) -> None:
    path = sealed_signing_key(tmp_path, PASSPHRASE)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(KeyFileError, match=message):
        crypto.load_signing_key(path, PASSPHRASE)


def _kdf(data: bytes) -> dict[str, object]:
    kdf: dict[str, object] = cbor2.loads(base64.decodebytes(b"".join(data.split(b"\n")[1:-2])))["header"]["kdf"]
    return kdf


# -- passphrase and master key files -----------------------------------------------------------


def test_a_passphrase_file_is_read_without_its_final_newline(tmp_path: Path) -> None:
    (tmp_path / "with").write_bytes(b"correct horse battery staple\n")
    (tmp_path / "without").write_bytes(b"correct horse battery staple")
    with_newline = KeyProtectionFiles(passphrase_file=tmp_path / "with").read()
    assert with_newline == KeyProtectionFiles(passphrase_file=tmp_path / "without").read()
    assert isinstance(with_newline, Passphrase) and with_newline.secret == PASSPHRASE.secret


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (lambda d: KeyProtectionFiles(d / "pass", d / "master"), "not both"),
        (lambda d: KeyProtectionFiles(passphrase_file=d / "empty"), "the passphrase file is empty"),
        (lambda d: KeyProtectionFiles(passphrase_file=d / "newline"), "the passphrase file is empty"),
        (lambda d: KeyProtectionFiles(passphrase_file=d / "absent"), "no such passphrase file"),
        (lambda d: KeyProtectionFiles(passphrase_file=d / "huge"), "larger than 1024 bytes"),
        (lambda d: KeyProtectionFiles(passphrase_file=d / "dir"), "cannot read the passphrase file|not a regular"),
        (lambda d: KeyProtectionFiles(master_key_file=d / "short"), "at least 32 random bytes, it has 31"),
        (lambda d: KeyProtectionFiles(master_key_file=d / "absent"), "no such master key file"),
    ],
)
def test_an_unusable_passphrase_or_master_key_file_is_refused(tmp_path: Path, files: object, message: str) -> None:
    (tmp_path / "pass").write_bytes(b"pw")
    (tmp_path / "master").write_bytes(os.urandom(32))
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "newline").write_bytes(b"\n")
    (tmp_path / "huge").write_bytes(b"x" * 2000)
    (tmp_path / "short").write_bytes(os.urandom(31))
    (tmp_path / "dir").mkdir()
    with pytest.raises(KeyFileError, match=message):
        files(tmp_path).read()  # type: ignore[operator]


def test_no_files_means_no_protection() -> None:
    assert KeyProtectionFiles().read() is None and not KeyProtectionFiles()


# -- converting in place -----------------------------------------------------------------------


def test_reseal_walks_a_key_from_plain_to_passphrase_to_master_key_to_plain_keeping_it(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    crypto.save_signing_key(path, SIGNING_KEY)
    steps = [(None, PASSPHRASE), (PASSPHRASE, MASTER_KEY), (MASTER_KEY, None)]
    for current, new in steps:
        assert key_files.reseal(path, current, new)
        assert crypto.load_signing_key(path, new).public_key == SIGNING_KEY.public_key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not key_files.reseal(path, current, new)  # already done: left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing.pem"]


def test_encrypting_a_key_sealed_under_something_else_is_refused_pointing_to_rekey(tmp_path: Path) -> None:
    path = sealed_signing_key(tmp_path, OTHER_PASSPHRASE)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match=r"already encrypted, and not under the passphrase .* keys rekey"):
        key_files.reseal(path, None, PASSPHRASE)
    assert path.read_bytes() == before


def test_a_key_file_others_can_read_is_refused_as_such_not_as_encrypted_under_something_else(tmp_path: Path) -> None:
    path = sealed_signing_key(tmp_path, PASSPHRASE)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        key_files.reseal(path, None, MASTER_KEY)


def test_a_wrong_current_passphrase_changes_nothing(tmp_path: Path) -> None:
    path = sealed_signing_key(tmp_path, PASSPHRASE)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        key_files.reseal(path, OTHER_PASSPHRASE, MASTER_KEY)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["signing.pem"]


def test_a_failure_before_the_rename_leaves_the_old_key_and_the_next_run_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "encryption_key"
    crypto.save_encryption_key(path, ENCRYPTION_KEYS[1])
    with monkeypatch.context() as patched:
        patched.setattr(key_files.os, "replace", _fail)
        with pytest.raises(OSError, match="simulated crash"):
            key_files.reseal(path, None, PASSPHRASE)
    assert crypto.load_encryption_key(path).secret() == ENCRYPTION_KEYS[1].secret()  # the old key, in place
    assert (tmp_path / f"encryption_key{key_files.RESEALING_SUFFIX}").exists()
    assert key_files.reseal(path, None, PASSPHRASE)
    assert crypto.load_encryption_key(path, PASSPHRASE).secret() == ENCRYPTION_KEYS[1].secret()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encryption_key"]


def test_a_half_written_leftover_from_a_crash_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    crypto.save_signing_key(path, SIGNING_KEY)
    leftover = tmp_path / f"signing.pem{key_files.RESEALING_SUFFIX}"
    leftover.write_bytes(b"-----BEGIN P2PMED SEALED KEY-----\nAAA")
    assert key_files.reseal(path, None, MASTER_KEY)
    assert crypto.load_signing_key(path, MASTER_KEY).public_key == SIGNING_KEY.public_key
    assert not leftover.exists()


def _fail(*_args: object) -> None:
    raise OSError("simulated crash")


# -- a node home, through the CLI -------------------------------------------------------------


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, Path]:
    files = {"passphrase": tmp_path / "passphrase", "other": tmp_path / "other", "master": tmp_path / "master"}
    files["passphrase"].write_text("correct horse battery staple\n")
    files["other"].write_text("Tr0ub4dor&3\n")
    files["master"].write_bytes(os.urandom(32))
    return files


def test_init_with_a_passphrase_file_seals_both_keys_and_names_the_file_in_config(
    tmp_path: Path, secrets: dict[str, Path]
) -> None:
    home = tmp_path / "site"
    result = run("init", "--home", str(home), "--passphrase-file", str(secrets["passphrase"]))
    assert result.exit_code == 0, result.output
    for name in (NODE_KEY, ENCRYPTION_KEY):
        assert keys_at_rest.is_sealed((home / name).read_bytes())
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600
    assert load_config(home / CONFIG).passphrase_file == str(secrets["passphrase"].absolute())
    status = run("keys", "status", "--home", str(home))
    assert status.exit_code == 0 and status.output.count("encrypted under a passphrase (scrypt log2_n=17") == 2


def test_init_refuses_a_bad_master_key_file_before_writing_anything(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"too short")
    result = run("init", "--home", str(tmp_path / "site"), "--master-key-file", str(tmp_path / "short"))
    assert result.exit_code == 2 and "at least 32 random bytes" in result.output
    assert not (tmp_path / "site").exists()


def test_config_refuses_both_a_passphrase_file_and_a_master_key_file(tmp_path: Path) -> None:
    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]
    config = (home / CONFIG).read_text()
    (home / CONFIG).write_text(
        config.replace('passphrase_file = ""', 'passphrase_file = "p"').replace(
            'master_key_file = ""', 'master_key_file = "m"'
        )
    )
    with pytest.raises(ConfigError, match="keys: set passphrase_file or master_key_file, not both"):
        load_config(home / CONFIG)


def test_the_node_refuses_to_start_on_locked_wrong_or_mixed_keys_saying_which(
    tmp_path: Path, secrets: dict[str, Path]
) -> None:
    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]
    plain = run("node", "--home", str(home), env={"P2PMED_PASSPHRASE_FILE": str(secrets["passphrase"])})
    assert plain.exit_code == 2 and f"{home / NODE_KEY}: not encrypted, but a passphrase" in plain.output

    encrypted = run("keys", "encrypt", "--home", str(home), "--passphrase-file", str(secrets["passphrase"]))
    assert encrypted.exit_code == 0, encrypted.output
    assert encrypted.output.count(": encrypted\n") == 2 and "[keys] in config.toml" in encrypted.output

    locked = run("node", "--home", str(home))
    assert locked.exit_code == 2, locked.output
    assert f"{home / NODE_KEY}: encrypted under a passphrase, and none was given: set [keys]" in locked.output
    wrong = run("node", "--home", str(home), env={"P2PMED_PASSPHRASE_FILE": str(secrets["other"])})
    assert wrong.exit_code == 2 and "does not open: wrong passphrase" in wrong.output
    master = run("node", "--home", str(home), env={"P2PMED_MASTER_KEY_FILE": str(secrets["master"])})
    assert master.exit_code == 2 and "encrypted under a passphrase, not a master key file" in master.output

    (home / ENCRYPTION_KEY).unlink()  # a home half converted by hand: one key sealed, one plain
    crypto.save_encryption_key(home / ENCRYPTION_KEY, EncryptionPrivateKey.generate())
    mixed = run("node", "--home", str(home), env={"P2PMED_PASSPHRASE_FILE": str(secrets["passphrase"])})
    assert mixed.exit_code == 2 and f"{home / ENCRYPTION_KEY}: not encrypted, but" in mixed.output


def test_keys_encrypt_killed_between_the_two_files_leaves_usable_keys_and_a_rerun_finishes(
    tmp_path: Path, secrets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]
    before = load_home(home)
    real_replace, calls = os.replace, []

    def replace_once(source: Path, target: Path) -> None:
        calls.append(target)
        if len(calls) > 1:
            raise OSError("simulated crash")
        real_replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(key_files.os, "replace", replace_once)
        failed = run("keys", "encrypt", "--home", str(home), "--master-key-file", str(secrets["master"]))
    assert (
        failed.exit_code == 1 and "simulated crash" in failed.output and "run the same command again" in failed.output
    )
    master_key = KeyProtectionFiles(master_key_file=secrets["master"]).read()
    assert crypto.load_signing_key(home / NODE_KEY, master_key).public_key == before.key.public_key
    assert crypto.load_encryption_key(home / ENCRYPTION_KEY).secret() == before.encryption_key.secret()

    again = run("keys", "encrypt", "--home", str(home), "--master-key-file", str(secrets["master"]))
    assert again.exit_code == 0, again.output
    assert f"{home / NODE_KEY}: already encrypted under the file given; left as it was" in again.output
    after = load_home(home, KeyProtectionFiles(master_key_file=secrets["master"]))
    assert (after.key.public_key, after.encryption_key.secret()) == (
        before.key.public_key,
        before.encryption_key.secret(),
    )
    assert sorted(p.name for p in home.iterdir() if "key" in p.name) == [ENCRYPTION_KEY, NODE_KEY]


def test_keys_rekey_moves_a_home_to_a_new_passphrase_and_decrypt_back_to_plain(
    tmp_path: Path, secrets: dict[str, Path]
) -> None:
    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]
    before = load_home(home).key.public_key
    pass_a, pass_b = str(secrets["passphrase"]), str(secrets["other"])
    assert run("keys", "encrypt", "--home", str(home), "--passphrase-file", pass_a).exit_code == 0
    sealed = (home / NODE_KEY).read_bytes()
    wrong = run("keys", "rekey", "--home", str(home), "--passphrase-file", pass_b, "--new-passphrase-file", pass_b)
    assert wrong.exit_code == 2 and "does not open: wrong passphrase" in wrong.output
    assert (home / NODE_KEY).read_bytes() == sealed
    rekeyed = run("keys", "rekey", "--home", str(home), "--passphrase-file", pass_a, "--new-passphrase-file", pass_b)
    assert rekeyed.exit_code == 0, rekeyed.output
    assert load_home(home, KeyProtectionFiles(passphrase_file=secrets["other"])).key.public_key == before
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_home(home, KeyProtectionFiles(passphrase_file=secrets["passphrase"]))
    assert run("keys", "decrypt", "--home", str(home), "--passphrase-file", pass_b).exit_code == 0
    assert load_home(home).key.public_key == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "encrypt"], "name the key files, or a node home with --home"),
        (["keys", "encrypt", "{home}/node_key.pem"], "give --passphrase-file or --master-key-file"),
        (["keys", "rekey", "--home", "{home}", "--passphrase-file", "{passphrase}"], "--new-passphrase-file"),
        (["keys", "decrypt", "--home", "{home}"], "give the --passphrase-file or --master-key-file"),
        (["keys", "encrypt", "{passphrase}", "--master-key-file", "{master}"], "not a p2pmed encryption key file"),
    ],
)
def test_keys_commands_refuse_bad_input_with_exit_2(
    tmp_path: Path, secrets: dict[str, Path], args: list[str], message: str
) -> None:
    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]
    before = {name: (home / name).read_bytes() for name in (NODE_KEY, ENCRYPTION_KEY)}
    secrets["passphrase"].chmod(0o600)
    values = {"home": str(home), **{name: str(path) for name, path in secrets.items()}}
    result = run(*(arg.format(**values) for arg in args))
    assert result.exit_code == 2 and message in result.output, result.output
    assert before == {name: (home / name).read_bytes() for name in (NODE_KEY, ENCRYPTION_KEY)}


def test_a_persons_keys_made_encrypted_sign_only_with_their_master_key_file(
    tmp_path: Path, secrets: dict[str, Path]
) -> None:
    out = tmp_path / "patient"
    made = run("identity", "keys", "--out", str(out), "--master-key-file", str(secrets["master"]), "--json")
    assert made.exit_code == 0, made.output
    assert all(keys_at_rest.is_sealed((out / name).read_bytes()) for name in ("signing_key.pem", "encryption_key"))
    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]  # not running
    grant = ["consent", "grant", "--home", str(home), "--key", str(out / "signing_key.pem")]
    grant += ["--grantee", "11" * 32, "--category", "laboratory", "--purpose", "TREAT", "--expires", "2099-01-01"]
    locked = run(*grant)
    assert locked.exit_code == 2 and "encrypted under a master key file, and none was given" in locked.output
    opened = run(*grant, "--master-key-file", str(secrets["master"]))
    assert opened.exit_code == 1 and "no node is running" in opened.output  # the key opened; then no node answered


# -- a real node process ----------------------------------------------------------------------


def test_a_node_process_starts_from_an_encrypted_home_and_signs_with_encrypted_keys(
    secrets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory(prefix="p2pmed-") as directory:  # short: the socket path must fit
        net = ProcessNetwork(Path(directory), 1, NodeConfig(probes_from_anyone=True))
        home, passphrase, master = net.homes[0], str(secrets["passphrase"]), str(secrets["master"])
        assert run("keys", "encrypt", "--home", str(home), "--passphrase-file", passphrase).exit_code == 0
        locked = subprocess.run(
            [sys.executable, "-m", "p2pmed", "node", "--home", str(home)], capture_output=True, timeout=120, text=True
        )
        assert locked.returncode == 2 and "encrypted under a passphrase, and none was given" in locked.stderr

        monkeypatch.setenv("P2PMED_PASSPHRASE_FILE", passphrase)  # as a Docker secret would be given
        with net:
            net.start(0)
            status = net.wait_ready(0, WAIT_S)
            site = load_home(home, KeyProtectionFiles(secrets["passphrase"]))
            assert (status["chain_id"], status["validator_index"]) == (site.genesis.chain_id, 0)
            patient = json.loads(
                run("identity", "keys", "--out", f"{directory}/patient", "--master-key-file", master, "--json").output
            )
            registered = run(
                *("identity", "register-person", "--home", str(home), "--key", str(home / NODE_KEY)),
                *("--passphrase-file", passphrase, "--public-key", patient["public_key"], "--role", "patient"),
                *("--encryption-key", patient["encryption_key"], "--wait"),
            )
            assert registered.exit_code == 0, registered.output
            granted = run(
                *("consent", "grant", "--home", str(home), "--key", patient["signing_key_file"]),
                *("--master-key-file", master, "--grantee", site.key.public_key.hex(), "--category", "laboratory"),
                *("--purpose", "TREAT", "--expires", "2099-12-31", "--wait"),
            )
            assert granted.exit_code == 0, granted.output
