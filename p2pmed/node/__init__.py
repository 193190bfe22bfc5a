"""The daemon: what only a running node does.

``core`` binds the pure replica and ledger to the store; ``daemon`` drives it with
libp2p, a clock and the RPC socket under trio; ``compose`` wires them (the
composition root). ``api`` holds the RPC methods, written against the narrow
``api.port.NodePort``. May import net, store, rpc, site, interop, the core and
the foundation; never client, cli, sim, bench or testing.
"""
