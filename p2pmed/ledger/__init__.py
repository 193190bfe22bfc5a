"""The ledger: transactions, blocks, the state they change, and the rules that change it.

Pure and deterministic like the consensus core: no I/O, no clock, no randomness.
May import only the foundation (codec, crypto, quorum, input_error).
"""
