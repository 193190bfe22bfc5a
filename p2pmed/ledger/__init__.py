"""The ledger: transactions, blocks, the state they change, and the rules that change it."""
