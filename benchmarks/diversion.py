"""Diversion signals on the synthetic supply chain: detection rate, false-flag rate and cost.

Run ``python benchmarks/diversion.py [--seeds 1..5] [--weeks 12]``. Each seed builds the
generator's network (``p2pmed.sim.supply_chain``: makers, distributors, pharmacies and
hospitals; tens of thousands of packs; five planted patterns), runs it through the real
ledger rules a day a block, and raises flags every week as a validator would. It prints,
per seed and in all: planted patterns flagged by one of their rules (detection), honest
sites flagged by any rule (false flags), and what flagging cost: state reads and time to
check one ``supply.flag.raise`` on the ledger, the weekly off-ledger scan, and a day's
supply block (the counts the custody rules keep included). It asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics

from p2pmed.sim.supply_chain import Outcome, WorldShape, run


def _seeds(text: str) -> range:
    first, _, last = text.partition("..")
    return range(int(first), int(last or first) + 1)


def _row(outcome: Outcome) -> str:
    missed = sorted({plant.pattern for plant in outcome.plants} - {plant.pattern for plant in outcome.detected()})
    return (
        f"seed {outcome.seed:>3}  packs {outcome.packs:>6}  flags {len(outcome.flags):>3}"
        f"  detected {len(outcome.detected())}/{len(outcome.plants)}"
        f"  false {len(outcome.false_flagged())}/{len(outcome.honest)}"
        f"  missed {','.join(missed) or '-'}  false-flagged {','.join(outcome.false_flagged()) or '-'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1..5", help="A..B or N (default 1..5)")
    parser.add_argument("--weeks", type=int, default=WorldShape().weeks)
    arguments = parser.parse_args()
    outcomes = []
    for seed in _seeds(arguments.seeds):
        outcome = run(seed, WorldShape(weeks=arguments.weeks))
        outcomes.append(outcome)
        print(_row(outcome), flush=True)
    plants = sum(len(outcome.plants) for outcome in outcomes)
    detected = sum(len(outcome.detected()) for outcome in outcomes)
    honest = sum(len(outcome.honest) for outcome in outcomes)
    false = sum(len(outcome.false_flagged()) for outcome in outcomes)
    reads = [reads for outcome in outcomes for reads in outcome.flag_reads]
    raise_ms = [1000 * seconds for outcome in outcomes for seconds in outcome.flag_raise_s]
    scan_s = [seconds for outcome in outcomes for seconds in outcome.scan_s]
    block_ms = [1000 * seconds for outcome in outcomes for seconds in outcome.supply_block_s]
    print(f"detection rate  {detected}/{plants} = {detected / plants:.0%} of planted patterns")
    print(f"false-flag rate {false}/{honest} = {false / honest:.1%} of honest sites")
    print(
        f"checking a flag on the ledger: {statistics.median(reads)} state reads median, {max(reads)} max;"
        f" {statistics.median(raise_ms):.1f} ms median, {max(raise_ms):.1f} ms max"
    )
    print(f"weekly scan off the ledger: {statistics.median(scan_s):.2f} s median, {max(scan_s):.2f} s max")
    print(f"a day's supply block: {statistics.median(block_ms):.0f} ms median, {max(block_ms):.0f} ms max")


if __name__ == "__main__":
    main()
