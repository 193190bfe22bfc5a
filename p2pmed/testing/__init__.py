"""Harnesses, never used by the daemon: in-memory and process networks, and the demo.

Used by the tests, the simulator's real mode, the benchmark and ``p2pmed demo``.
"""
