"""Which rates a benchmark run offers: the ones asked for, or ``auto``: doubling until
saturation, then bisection until the best rate is known within ``PRECISION``.

``auto`` starts at ``AUTO_START_TX_PER_S`` and doubles the rate while the
network keeps up. Doubling stops at the first step that commits less than
``GROWTH_MIN`` times the best committed rate before it (throughput stopped
growing: saturation), whose p99 latency exceeds ``LATENCY_P99_MAX_MS`` (latency
exploded), or that left more than ``1 - COMMITTED_FRACTION_MIN`` of what it sent
uncommitted (a backlog that the next step would inherit), or committed less than
``COMMITTED_FRACTION_MIN`` of the offered rate. The best rate is then between the
highest rate that kept up (``_keeps_up``) and the rate that did not: a doubling knows
it within 100 %, which made two runs an hour apart report 1,000 and 794 tx/s. So the plan bisects between them until
they are within ``PRECISION`` of each other, then runs the highest rate that kept up
``REPEATS`` more times, for the run-to-run spread. At most ``AUTO_STEPS_MAX`` steps.
"""

from __future__ import annotations

from p2pmed.bench.step import StepResult

__all__ = [
    "AUTO_STEPS_MAX",
    "COMMITTED_FRACTION_MIN",
    "PRECISION",
    "RATES_MAX",
    "RATE_MAX_TX_PER_S",
    "REPEATS",
    "RatePlan",
    "parse_rates",
]

AUTO_START_TX_PER_S = 50.0
AUTO_STEPS_MAX = 16
PRECISION = 0.10
REPEATS = 2
GROWTH_MIN = 1.10
LATENCY_P99_MAX_MS = 2_000.0
COMMITTED_FRACTION_MIN = 0.9
RATES_MAX = 20
RATE_MAX_TX_PER_S = 100_000.0


def parse_rates(text: str) -> tuple[float, ...] | None:
    """``"auto"`` -> None; ``"50,100,200"`` -> (50.0, 100.0, 200.0). ``ValueError`` says what is wrong."""
    if text.strip().lower() == "auto":
        return None
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= RATES_MAX:
        raise ValueError(f"give 1..{RATES_MAX} rates separated by commas, or auto")
    rates = []
    for part in parts:
        try:
            rate = float(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number of transactions per second") from None
        if not 0 < rate <= RATE_MAX_TX_PER_S:  # also refuses nan
            raise ValueError(f"{part!r} is not in (0, {RATE_MAX_TX_PER_S:g}] tx/s")
        rates.append(rate)
    return tuple(rates)


class RatePlan:
    """``next_rate(steps)`` is the rate of the next step, or None when the run is over (``stop_reason`` says why)."""

    def __init__(self, rates: tuple[float, ...] | None) -> None:
        self.rates = rates
        self.stop_reason = ""
        self.bounds: tuple[float, float] | None = None
        """Once doubling saturated: the highest rate that kept up and the lowest that did not."""
        self._repeats_left = REPEATS

    def next_rate(self, steps: list[StepResult]) -> float | None:
        if self.rates is not None:
            if len(steps) < len(self.rates):
                return self.rates[len(steps)]
            self.stop_reason = "every rate asked for was run"
            return None
        if not steps:
            return AUTO_START_TX_PER_S
        rate = self._doubling(steps) if self.bounds is None else self._refining(steps)
        if rate is not None and len(steps) >= AUTO_STEPS_MAX:
            self.stop_reason = f"auto: reached the cap of {AUTO_STEPS_MAX} steps"
            return None
        return rate

    def _doubling(self, steps: list[StepResult]) -> float | None:
        saturation = _saturated(steps)
        if not saturation:
            return steps[-1].rate * 2
        kept_up = [step.rate for step in steps[:-1] if _keeps_up(step)]  # the last one saturated
        if not kept_up:
            self.stop_reason = saturation
            return None
        self.stop_reason = saturation
        self.bounds = (max(kept_up), steps[-1].rate)
        return self._refining([])

    def _refining(self, steps: list[StepResult]) -> float | None:
        assert self.bounds is not None
        low, high = self.bounds
        if steps and steps[-1].rate not in (low, high):  # a bisection step: it moves one bound
            low, high = (steps[-1].rate, high) if _keeps_up(steps[-1]) else (low, steps[-1].rate)
            self.bounds = (low, high)
        if high - low > PRECISION * low:
            return (low + high) / 2
        if self._repeats_left:
            self._repeats_left -= 1
            return low
        self.stop_reason += f"; the best rate is within {low:g}..{high:g} tx/s (kept up at {low:g})"
        return None


def _keeps_up(step: StepResult) -> bool:
    """Whether the network committed what was offered: at the offered rate (within
    ``COMMITTED_FRACTION_MIN``), nearly all of it in the end, and with p99 in bounds."""
    p99 = step.latency_ms.get("p99")
    return (
        p99 is not None
        and p99 <= LATENCY_P99_MAX_MS
        and step.committed_fraction >= COMMITTED_FRACTION_MIN
        and step.committed_per_s >= COMMITTED_FRACTION_MIN * step.offered_per_s
    )


def _saturated(steps: list[StepResult]) -> str:
    """Why the last step shows saturation, or "" if the network still keeps up."""
    last = steps[-1]
    best_before = max((step.committed_per_s for step in steps[:-1]), default=0.0)
    p99 = last.latency_ms.get("p99")
    if p99 is None:
        return f"auto: nothing committed at {last.rate:g} tx/s"
    if p99 > LATENCY_P99_MAX_MS:
        return f"auto: latency exploded at {last.rate:g} tx/s (p99 {p99} ms > {LATENCY_P99_MAX_MS:g} ms)"
    if last.committed_fraction < COMMITTED_FRACTION_MIN:
        return f"auto: at {last.rate:g} tx/s only {last.committed_fraction:.0%} of what was sent committed in time"
    if last.committed_per_s < COMMITTED_FRACTION_MIN * last.offered_per_s:
        return f"auto: saturated at {last.rate:g} tx/s (committed {last.committed_per_s:.0f} tx/s of it)"
    if best_before and last.committed_per_s < GROWTH_MIN * best_before:
        return (
            f"auto: saturated at {last.rate:g} tx/s (committed {last.committed_per_s:.0f} tx/s, "
            f"best before {best_before:.0f})"
        )
    return ""
