"""Operator setup: init, testnet, config.toml and genesis.json parsing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pmed import crypto
from p2pmed.cli.main import cli
from p2pmed.site.config import ConfigError, NodeConfig, load_config, parse_config, render_config
from p2pmed.site.genesis import GenesisError, load_genesis, parse_genesis
from p2pmed.site.home import CONFIG, ENCRYPTION_KEY, GENESIS, NODE_KEY, create_testnet, load_home


def test_init_creates_a_private_key_and_a_config_that_loads_to_the_defaults(tmp_path: Path) -> None:
    home = tmp_path / "hospital"
    result = CliRunner().invoke(cli, ["init", "--home", str(home), "--moniker", "hospital-a", "--kind", "laboratory"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((home / NODE_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / ENCRYPTION_KEY).stat().st_mode) == 0o600
    key, encryption_key = crypto.load_signing_key(home / NODE_KEY), crypto.load_encryption_key(home / ENCRYPTION_KEY)
    entry = json.loads(result.output[result.output.index("{") :])  # the genesis entry to paste
    assert (
        entry["public_key"] == key.public_key.hex() and entry["encryption_key"] == encryption_key.public_key.key.hex()
    )
    assert (entry["moniker"], entry["kind"]) == ("hospital-a", "laboratory")
    config = load_config(home / CONFIG)
    assert config == NodeConfig(moniker="hospital-a", listen="/ip4/0.0.0.0/tcp/26656")


def test_init_refuses_to_overwrite_an_existing_node(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    CliRunner().invoke(cli, ["init", "--home", str(home)])
    key_before = (home / NODE_KEY).read_bytes()
    result = CliRunner().invoke(cli, ["init", "--home", str(home)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert (home / NODE_KEY).read_bytes() == key_before


def test_testnet_homes_share_one_genesis_listing_every_node_key(tmp_path: Path) -> None:
    homes = create_testnet(tmp_path, 4, 30000, "test-chain")
    geneses = [load_genesis(home / GENESIS) for home in homes]
    assert len({genesis.hash for genesis in geneses}) == 1
    genesis = geneses[0]
    assert genesis.chain_id == "test-chain"
    assert [validator.kind for validator in genesis.validators] == ["hospital", "laboratory", "pharmacy", "distributor"]
    for index, home in enumerate(homes):
        assert crypto.load_signing_key(home / NODE_KEY).public_key == genesis.validators[index].public_key
        assert crypto.load_encryption_key(home / ENCRYPTION_KEY).public_key == genesis.validators[index].encryption_key
        assert (
            load_config(home / CONFIG).listen
            == genesis.validators[index].address
            == f"/ip4/127.0.0.1/tcp/{30000 + index}"
        )


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("moniker = 3\n", "moniker", "expected a non-empty string"),
        ("[consensus]\nbatch_size_max = 0\n", "consensus.batch_size_max", "from 1 to 10000"),
        ("[consensus]\nbatch_delay_ms = true\n", "consensus.batch_delay_ms", "expected an integer"),
        ("[consensus]\nbatch_size = 5\n", "consensus.batch_size", "did you mean 'consensus.batch_size_max'"),
        ('[p2p]\nlisten = "localhost:80"\n', "p2p.listen", "multiaddr"),
        ('[log]\nformat = "xml"\n', "log.format", "'auto', 'json', 'console'"),
        ("[metrics]\nport = 70000\n", "metrics.port", "from 0 to 65535"),
        ('[fault_injection]\nenabled = "yes"\n', "fault_injection.enabled", "true or false"),
        ("consensus = 5\n", "consensus", "expected a table"),
        ("[consensus]\nblock_bytes_max = 8388608\n", "consensus.block_bytes_max", "from 1048576 to 4194304"),
        ("[consensus]\nblock_time_skew_max_ms = 10\n", "consensus.block_time_skew_max_ms", "from 1000 to 3600000"),
        ('[p2p]\ngossip_publishers = "anyone"\n', "p2p.gossip_publishers", "'validators', 'organisations', 'any'"),
        ('[p2p]\ngossip_peers = "12D3KooW"\n', "p2p.gossip_peers", "a list of at most 256"),
        ('[p2p]\ngossip_peers = ["not-a-peer-0OIl"]\n', "p2p.gossip_peers", "is not a libp2p peer id"),
    ],
)
def test_a_bad_config_names_the_key_at_fault(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = tmp_path / CONFIG
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.key == key and fragment in raised.value.reason


def test_config_that_is_not_toml_or_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("moniker = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")


def test_a_rendered_config_reads_back_unchanged() -> None:
    import tomllib

    defaults = NodeConfig()
    assert parse_config(tomllib.loads(render_config(defaults))) == defaults
    custom = NodeConfig(
        moniker='St "Mary\'s"',
        listen="/ip4/0.0.0.0/tcp/9000",
        metrics_port=9100,
        request_timeout_ms=700,
        log_format="json",
        log_level="debug",
        fault_injection=True,
        gossip_publishers="organisations",
        gossip_peers=("12D3KooWBuEsukonoerUd1mjG5nds44XGk5kAt2H7GwFdKtMDoeL",),
    )
    assert parse_config(tomllib.loads(render_config(custom))) == custom


def _genesis_document() -> dict:
    return {
        "chain_id": "c",
        "genesis_time_ms": 0,
        "validators": [
            {
                "moniker": "a",
                "public_key": "11" * 32,
                "address": "/ip4/127.0.0.1/tcp/1",
                "kind": "hospital",
                "encryption_key": "22" * 32,
            }
        ],
    }


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.update(chain_id="Bad Chain"), "chain_id"),
        (lambda d: d.update(genesis_time_ms=-1), "genesis_time_ms"),
        (lambda d: d.update(validators=[]), "validators"),
        (lambda d: d["validators"][0].update(public_key="zz"), "validators[0].public_key"),
        (lambda d: d["validators"][0].update(address="nowhere"), "validators[0].address"),
        (lambda d: d["validators"][0].pop("moniker"), "validators[0].moniker"),
        (lambda d: d["validators"][0].update(kind="spa"), "validators[0].kind"),
        (lambda d: d["validators"][0].update(encryption_key="22"), "validators[0].encryption_key"),
        (lambda d: d["validators"][0].update(encryption_kem="rsa"), "validators[0].encryption_kem"),
        (lambda d: d["validators"][0].update(encryption_kem="mlkem768-x25519"), "validators[0].encryption_key"),
        (lambda d: d.update(extra=1), "extra"),
        (
            lambda d: d["validators"].append(dict(d["validators"][0], moniker="b", address="/ip4/127.0.0.1/tcp/2")),
            "validators",
        ),
    ],
)
def test_a_bad_genesis_names_the_key_at_fault(change, key: str) -> None:  # type: ignore[no-untyped-def]
    document = _genesis_document()
    parse_genesis(document)
    change(document)
    with pytest.raises(GenesisError) as raised:
        parse_genesis(json.loads(json.dumps(document)))
    assert raised.value.key == key


def test_node_exits_2_naming_what_is_wrong_with_its_home(tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["node", "--home", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "p2pmed init" in missing.output

    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]
    config = (home / CONFIG).read_text()
    (home / CONFIG).write_text(config.replace("batch_size_max", "batch_size_maks"))
    typo = CliRunner().invoke(cli, ["node", "--home", str(home)])
    assert typo.exit_code == 2 and "consensus.batch_size_maks" in typo.output and "batch_size_max" in typo.output

    (home / CONFIG).write_text(config)
    other = create_testnet(tmp_path / "other", 1, 30_000, "c")[0]
    (home / GENESIS).write_text((other / GENESIS).read_text())
    stranger = CliRunner().invoke(cli, ["node", "--home", str(home)])
    assert stranger.exit_code == 2 and "not among the validators" in stranger.output


def test_a_home_whose_rpc_socket_path_is_too_long_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    home = create_testnet(deep, 1, 30_000, "c")[0]
    result = CliRunner().invoke(cli, ["node", "--home", str(home)])
    assert result.exit_code == 2 and "longer than 107 bytes" in result.output


def test_a_genesis_without_encryption_kem_means_x25519() -> None:
    (validator,) = parse_genesis(_genesis_document()).validators
    assert validator.encryption_key == crypto.EncryptionPublicKey(crypto.Kem.X25519, bytes.fromhex("22" * 32))


def test_sites_with_post_quantum_hybrid_keys_round_trip_through_genesis_and_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["testnet", "--nodes", "2", "--out", str(tmp_path / "net"), "--kem", "mlkem768-x25519"]
    )
    assert result.exit_code == 0, result.output
    homes = [tmp_path / "net" / f"node{index}" for index in range(2)]
    genesis = load_genesis(homes[0] / GENESIS)
    assert [validator.encryption_key.kem for validator in genesis.validators] == [crypto.Kem.MLKEM768_X25519] * 2
    assert json.loads((homes[0] / GENESIS).read_text())["validators"][0]["encryption_kem"] == "mlkem768-x25519"
    for home in homes:
        loaded = load_home(home)
        assert loaded.encryption_key.public_key == genesis.validators[loaded.index].encryption_key
    entry = CliRunner().invoke(cli, ["init", "--home", str(tmp_path / "site"), "--kem", "mlkem768-x25519"])
    assert '"encryption_kem": "mlkem768-x25519"' in entry.output


def test_a_home_whose_encryption_key_is_not_the_one_in_genesis_is_refused(tmp_path: Path) -> None:
    home = create_testnet(tmp_path / "net", 1, 30_000, "c")[0]
    (home / ENCRYPTION_KEY).unlink()
    crypto.save_encryption_key(home / ENCRYPTION_KEY, crypto.EncryptionPrivateKey.generate())
    result = CliRunner().invoke(cli, ["node", "--home", str(home)])
    assert result.exit_code == 2 and "does not match this node's encryption_key" in result.output


def test_a_checkpoint_interval_whose_view_changes_could_exceed_a_frame_is_refused_at_start(tmp_path: Path) -> None:
    homes = create_testnet(tmp_path / "net", 31, 30_000, "c")  # quorum 21: a window of 4 x 50 still fits
    config = (homes[0] / CONFIG).read_text()
    (homes[0] / CONFIG).write_text(config.replace("checkpoint_interval = 16", "checkpoint_interval = 51"))
    result = CliRunner().invoke(cli, ["node", "--home", str(homes[0])])
    assert result.exit_code == 2 and "checkpoint_interval = 51 is too large for 31 validators" in result.output


def test_init_refuses_load_probes_from_strangers_and_testnet_admits_them(tmp_path: Path) -> None:
    CliRunner().invoke(cli, ["init", "--home", str(tmp_path / "site")])
    assert not load_config(tmp_path / "site" / CONFIG).probes_from_anyone
    assert load_config(create_testnet(tmp_path / "net", 1, 30_000, "c")[0] / CONFIG).probes_from_anyone
