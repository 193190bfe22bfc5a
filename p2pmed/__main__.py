"""`python -m p2pmed` is the `p2pmed` command."""

from p2pmed.cli.main import main

main()
