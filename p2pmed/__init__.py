"""p2pmed: a peer-to-peer network for sharing healthcare data between organisations.

The packages are the layers, each importing only the ones below it (``make test``
checks this with import-linter; the contracts are in pyproject.toml)::

    cli                      the ``p2pmed`` command
    testing  sim  bench      harnesses: process and in-memory networks, the demo,
                             the simulator, the benchmark
    client                   what talks to a node: signing, submitting, records, load
    node                     the daemon: core, mempool, custodian, RPC methods, metrics
    net  store  rpc  site    libp2p protocols, SQLite and blobs, JSON-RPC, home/config/genesis
    interop                  FHIR and GS1 EPCIS mapped to ledger types
    consensus  ledger        the pure core: PBFT replica, transactions and healthcare rules
    key_shares               a record's data key split among its custodians (Shamir)
    codec crypto quorum ...  the foundation: canonical CBOR, keys and signatures, vote math
"""
