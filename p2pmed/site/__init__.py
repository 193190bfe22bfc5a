"""A site's files: its home directory (keys, config.toml, store), the config, the genesis.

Read by the daemon, the CLI and the harnesses. May import the ledger and the foundation.
"""
