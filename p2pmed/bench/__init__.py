"""``p2pmed bench``: throughput and latency of a real network against this machine's limit.

- ``limit``: the signature limit, Ed25519 verifications per core-second x cores / nodes;
- ``network``: N node processes on 127.0.0.1, one open-loop ``step`` per rate of a
  ``plan`` (fixed, or doubling until saturation), commits timed by ``commits``,
  CPU per process read by ``cpu``;
- ``sim_speed``: the simulator's speed against real time (``--sim``);
- ``report`` and ``plot``: bench.json, the table and bench.png.

Nothing here asserts a speed: the figures are measured and reported, and the
targets are judged in the report (the house rule: tests assert behaviour).
"""
