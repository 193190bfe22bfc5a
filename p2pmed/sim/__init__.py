"""The deterministic simulator: the pure replicas on a virtual clock and a faulty network.

Everything is drawn from one seed, so a failing run replays exactly; checkers
judge safety and liveness; ``real`` plays the same scenarios on node processes.
May import the core, ``client`` and ``testing``; never ``node`` or ``cli``.
"""
