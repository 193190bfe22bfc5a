"""Percentiles as every report here states them: ``statistics.quantiles`` with the
inclusive method on 100 cuts, so a simulation, a real run, ``p2pmed load`` and the
benchmark agree on what p99 means."""

from __future__ import annotations

import statistics

__all__ = ["percentiles"]


def percentiles(
    values: list[float] | list[int], names: tuple[str, ...] = ("p50", "p99", "max")
) -> dict[str, float | None]:
    """``{"p50": ..., "max": ...}`` for ``names`` (``pNN`` or ``max``); None for each when there are no values."""
    if not values:
        return dict.fromkeys(names)
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    return {name: ordered[-1] if name == "max" else cuts[int(name[1:]) - 1] for name in names}
