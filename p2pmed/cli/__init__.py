"""The ``p2pmed`` command, one module per command group; ``main`` registers them.

The top layer: may import anything in p2pmed; nothing imports it.
"""
