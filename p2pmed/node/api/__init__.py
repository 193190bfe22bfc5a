"""The node's JSON-RPC methods, grouped by what they serve (chain, health rules, records).

Each group takes a ``NodePort`` (``port``), not the daemon itself.
"""
