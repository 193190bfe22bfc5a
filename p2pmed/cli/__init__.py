"""The ``p2pmed`` command, one module per command group; ``main`` registers them.

The top layer: may import anything in p2pmed; nothing imports it. A command
imports what it runs inside its function, so that ``p2pmed status`` does not
pay for importing libp2p and the daemon (about 0.8 s on a 2-core machine).
"""
