"""What talks to a node over its RPC socket: signing and submitting transactions,
storing and reading records, generating load.

May import rpc, the core and the foundation; never node or cli.
"""
