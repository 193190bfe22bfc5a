"""A synthetic drug supply chain with planted diversion, run through the real ledger rules.

One seed draws everything: a network of makers, distributors, pharmacies and hospitals;
their products (one a schedule II controlled substance); each dispenser's daily demand
(Poisson, with weekday swings, site sizes a factor of two or three apart, and a seasonal
rise of one product everywhere); orders when stock runs low; honest losses (a pack now
and then missing on arrival, damaged, or stolen). Every day is one block of signed
transactions executed by ``Ledger.execute_block``, so the counts the signals read are the
ones the custody rules keep. A new pharmacy opens halfway, with no history of its own.

Planted patterns (``Plant``), each with the site it should flag and the rules that may:

- ``pill-mill``: a pharmacy dispenses one product at five times its size (volume-peers);
- ``surge``: a pharmacy's dispensing of one product quadruples in the last weeks
  (volume-history);
- ``leaky-distributor``: 8 % of the packs a distributor ships never arrive, and one
  whole shipment is never received (transit-loss, custody-gap);
- ``theft-cluster``: a hospital decommissions packs as stolen or lost every day for two
  weeks (stolen-lost);
- ``siphon``: a hospital pockets one in ten controlled packs it receives, recording
  nothing, so they stay on its books (balance).

Once a week a validator scans the committed state (``supply.candidates``) and raises every
new subject with ``supply.flag.raise``, as a validator's node would; the ledger recomputes
each flag's evidence. ``run`` returns the flags on the ledger and what they cost.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES, membership, supply
from p2pmed.ledger.contracts.identity import OrganisationProfile, genesis_state
from p2pmed.ledger.contracts.membership import ValidatorProfile
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction, sign_transaction

__all__ = ["CHAIN_ID", "DAY_MS", "MemoryState", "Outcome", "Plant", "World", "WorldShape", "run"]

CHAIN_ID = "supply-synthetic"
DAY_MS = 24 * 3600 * 1000
WEEK_MS = supply.thresholds.WEEK_MS
START_MS = (1_767_225_600_000 // WEEK_MS + 1) * WEEK_MS
"""The first ledger week boundary of 2026 (weeks count from the Unix epoch)."""
WEEKDAY_FACTORS = (1.1, 1.0, 1.0, 1.05, 1.2, 0.8, 0.5)
STOCK_DAYS = 14
REORDER_DAYS = 7
DISTRIBUTOR_STOCK_DAYS = 21
DISTRIBUTOR_REORDER_DAYS = 10
HONEST_MISSING_PER_SHIPMENT = 0.03
LEAKY_MISSING_PER_PACK = 0.08
SIPHONED_PER_PACK = 0.1
DAMAGED_PER_SITE_DAY = 0.01
STOLEN_PER_SITE_DAY = 0.003


@dataclass(frozen=True)
class WorldShape:
    makers: int = 3
    products_per_maker: int = 3
    distributors: int = 4
    pharmacies: int = 16
    hospitals: int = 7
    weeks: int = 12


@dataclass(frozen=True)
class Plant:
    pattern: str
    site: str
    rules: tuple[str, ...]


@dataclass
class Site:
    name: str
    kind: str
    key: SigningKey
    supplier: Site | None = None
    stock: dict[str, list[supply.PackRef]] = field(default_factory=lambda: defaultdict(list))
    demand: dict[str, float] = field(default_factory=dict)
    """Packs a day, per GTIN (dispensers)."""
    on_order: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    opens_day: int = 0

    @property
    def id(self) -> bytes:
        return self.key.public_key


@dataclass
class Delivery:
    shipment: bytes
    source: Site
    destination: Site
    packs: tuple[supply.PackRef, ...]
    due_day: int


@dataclass
class Outcome:
    seed: int
    plants: tuple[Plant, ...]
    honest: tuple[str, ...]
    flags: list[supply.Flag]
    site_names: dict[bytes, str]
    packs: int
    blocks: int
    supply_block_s: list[float]
    flag_raise_s: list[float]
    flag_reads: list[int]
    scan_s: list[float]

    def flagged(self) -> dict[str, set[str]]:
        """Site name -> the rules that flagged it."""
        found: dict[str, set[str]] = defaultdict(set)
        for raised in self.flags:
            found[self.site_names[raised.subject.site]].add(raised.subject.rule)
        return found

    def detected(self) -> list[Plant]:
        flagged = self.flagged()
        return [plant for plant in self.plants if flagged.get(plant.site, set()) & set(plant.rules)]

    def false_flagged(self) -> list[str]:
        flagged = self.flagged()
        return [name for name in self.honest if name in flagged]


class MemoryState:
    """The ledger state in memory, counting reads (the cost of a block)."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data
        self.reads = 0

    def state_get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.data.get(key)

    def state_items(self, prefix: str) -> Any:
        return iter(sorted((key, value) for key, value in self.data.items() if key.startswith(prefix)))


def _company_prefix(maker: int) -> str:
    return f"{3000000 + maker * 100:07d}"


def _gtin(maker: int, product: int) -> str:
    body = f"0{_company_prefix(maker)}{product:05d}"
    return body + supply.gs1_check_digit(body)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; means here are small."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class World:
    def __init__(self, seed: int, shape: WorldShape = WorldShape()) -> None:
        self.seed, self.shape = seed, shape
        self.rng = random.Random(seed)
        self.sites: list[Site] = []
        self.validators = [self._key(f"validator-{index}") for index in range(4)]
        self.makers = [self._site(f"maker-{index}", "manufacturer") for index in range(shape.makers)]
        self.products = {
            _gtin(maker, product): self.makers[maker]
            for maker in range(shape.makers)
            for product in range(shape.products_per_maker)
        }
        self.controlled = _gtin(0, shape.products_per_maker - 1)
        self.distributors = [self._site(f"distributor-{index}", "distributor") for index in range(shape.distributors)]
        self.dispensers = [self._site(f"pharmacy-{index}", "pharmacy") for index in range(shape.pharmacies)]
        self.dispensers += [self._site(f"hospital-{index}", "hospital") for index in range(shape.hospitals)]
        for index, site in enumerate(self.dispensers):
            site.supplier = self.distributors[index % len(self.distributors)]
            size = min(max(math.exp(self.rng.gauss(0, 0.35)), 0.5), 2.0) * (2.0 if site.kind == "hospital" else 1.0)
            for gtin in self.products:
                site.demand[gtin] = size * (0.6 if gtin == self.controlled else self.rng.uniform(0.8, 2.0))
        self.dispensers[self.shape.pharmacies - 1].opens_day = 7 * (shape.weeks // 2)
        self.seasonal = _gtin(1, 0)
        self.plants = self._plant()
        self.ledger = self._ledger()
        self.state = MemoryState(dict(self.ledger.genesis_state))
        self.nonces: dict[bytes, int] = defaultdict(int)
        self.serials: dict[str, int] = defaultdict(int)
        self.deliveries: list[Delivery] = []
        self.pending: list[Transaction] = []
        self.height, self.previous_hash, self.packs = 0, GENESIS_PARENT_HASH, 0
        self.vanish_day = 7 * (shape.weeks // 2)
        self.vanished: bytes | None = None
        for index, maker in enumerate(self.makers):  # ordered in the first block, before any commission
            self._send(self.validators[0], "supply.prefix.grant", supply.PrefixGrant(maker.id, _company_prefix(index)))

    def _key(self, name: str) -> SigningKey:
        return SigningKey.from_seed(hashlib.sha256(f"{self.seed}/{name}".encode()).digest())

    def _site(self, name: str, kind: str) -> Site:
        site = Site(name, kind, self._key(name))
        self.sites.append(site)
        return site

    def _plant(self) -> dict[str, Site]:
        pharmacies = [site for site in self.dispensers if site.kind == "pharmacy" and not site.opens_day]
        hospitals = [site for site in self.dispensers if site.kind == "hospital"]
        chosen_pharmacies = self.rng.sample(pharmacies, 2)
        chosen_hospitals = self.rng.sample(hospitals, 2)
        return {
            "pill-mill": chosen_pharmacies[0],
            "surge": chosen_pharmacies[1],
            "leaky-distributor": self.rng.choice(self.distributors),
            "theft-cluster": chosen_hospitals[0],
            "siphon": chosen_hospitals[1],
        }

    def _ledger(self) -> Ledger:
        encryption = EncryptionPrivateKey.generate().public_key  # the signals never read it
        profiles = [
            OrganisationProfile(key.public_key, f"validator {i}", "regulator", encryption)
            for i, key in enumerate(self.validators)
        ]
        profiles += [OrganisationProfile(site.id, site.name, site.kind, encryption) for site in self.sites]
        validators = [
            ValidatorProfile(key.public_key, key.public_key, "/ip4/127.0.0.1/tcp/1", encryption)
            for key in self.validators
        ]
        return Ledger(CHAIN_ID, ALL_TX_TYPES, genesis_state(profiles) | membership.genesis_state(validators))

    # -- transactions and blocks --------------------------------------------------------------

    def _send(self, site: Site | SigningKey, tx_type: str, body: Any) -> Transaction:
        key = site.key if isinstance(site, Site) else site
        tx = sign_transaction(key, CHAIN_ID, tx_type, self.nonces[key.public_key], body)
        self.nonces[key.public_key] += 1
        self.pending.append(tx)
        return tx

    def _commit(self, time_ms: int) -> tuple[float, int]:
        """Execute the pending transactions as the next block; every one must pass (else the
        generator is wrong). Returns the seconds and state reads it took."""
        txs, self.pending = tuple(self.pending), []
        self.height += 1
        block = make_block(CHAIN_ID, self.height, self.previous_hash, txs, self.validators[0].public_key, time_ms)
        self.state.reads = 0
        started = time.perf_counter()
        execution = self.ledger.execute_block(self.state, block, frozenset(tx.id for tx in txs))
        elapsed = time.perf_counter() - started
        for tx, result in zip(txs, execution.results, strict=True):
            assert result.ok, f"seed {self.seed}: {tx.type} refused: {result.reason} {result.detail}"
        for key, value in execution.changes.items():
            if value is None:
                self.state.data.pop(key, None)
            else:
                self.state.data[key] = value
        self.previous_hash = block.hash
        return elapsed, self.state.reads

    # -- the supply chain's day ------------------------------------------------------------------

    def _mean(self, site: Site, gtin: str, day: int) -> float:
        """Packs a day ``site`` dispenses of ``gtin`` on ``day``, before the weekday's swing."""
        if day < max(site.opens_day, 7):
            return 0.0
        week = day // 7
        mean = site.demand[gtin]
        if gtin == self.seasonal and self.shape.weeks // 3 <= week < self.shape.weeks // 3 + 3:
            mean *= 1.3
        if site is self.plants["pill-mill"] and gtin == _gtin(2, 0):
            mean *= 5
        if site is self.plants["surge"] and gtin == _gtin(1, 1) and week >= self.shape.weeks - 3:
            mean *= 4
        return mean

    def _ship(self, source: Site, destination: Site, packs: list[supply.PackRef], day: int, transit_days: int) -> None:
        tx = self._send(source, "supply.ship", supply.SupplyShip(destination.id, tuple(packs)))
        for ref in packs:
            destination.on_order[ref.gtin] += 1
        self.deliveries.append(Delivery(tx.id, source, destination, tuple(packs), day + transit_days))

    def _receive(self, delivery: Delivery, source_leaks: bool) -> None:
        if source_leaks:
            missing = {ref for ref in delivery.packs if self.rng.random() < LEAKY_MISSING_PER_PACK}
        elif self.rng.random() < HONEST_MISSING_PER_SHIPMENT:
            missing = {self.rng.choice(delivery.packs)}
        else:
            missing = set()
        arrived = tuple(ref for ref in delivery.packs if ref not in missing)
        body = supply.SupplyReceive(delivery.shipment, arrived, tuple(ref for ref in delivery.packs if ref in missing))
        self._send(delivery.destination, "supply.receive", body)
        site = delivery.destination
        for ref in delivery.packs:
            site.on_order[ref.gtin] -= 1
        siphons = site is self.plants["siphon"]
        for ref in arrived:
            if not (siphons and ref.gtin == self.controlled and self.rng.random() < SIPHONED_PER_PACK):
                site.stock[ref.gtin].append(ref)

    def _deliver(self, day: int) -> None:
        """Receive what is due today; from day ``vanish_day`` on, the leaky distributor's first
        shipment is never received (its destination writes it off and orders again)."""
        due = [delivery for delivery in self.deliveries if delivery.due_day == day]
        self.deliveries = [delivery for delivery in self.deliveries if delivery.due_day != day]
        leaky = self.plants["leaky-distributor"]
        for delivery in due:
            if delivery.source is leaky and self.vanished is None and day >= self.vanish_day:
                self.vanished = delivery.shipment
                for ref in delivery.packs:
                    delivery.destination.on_order[ref.gtin] -= 1
            else:
                self._receive(delivery, delivery.source is leaky)

    def _take(self, site: Site, gtin: str, count: int) -> list[supply.PackRef]:
        """``count`` packs from stock, mostly the oldest (first in, first out), now and then any."""
        stock, taken = site.stock[gtin], []
        for _ in range(min(count, len(stock))):
            index = 0 if self.rng.random() < 0.9 else self.rng.randrange(len(stock))
            taken.append(stock.pop(index))
        return taken

    def _dispense(self, day: int) -> None:
        for site in self.dispensers:
            packs = [
                ref
                for gtin in self.products
                for ref in self._take(
                    site, gtin, _poisson(self.rng, self._mean(site, gtin, day) * WEEKDAY_FACTORS[day % 7])
                )
            ]
            if packs:
                self._send(site, "supply.dispense", supply.SupplyDispense(tuple(packs)))

    def _decommission(self, site: Site, reason: str) -> None:
        held = [gtin for gtin in self.products if site.stock[gtin]]
        if held:
            packs = self._take(site, self.rng.choice(held), 1)
            self._send(site, "supply.decommission", supply.SupplyDecommission(tuple(packs), reason))

    def _losses(self, day: int) -> None:
        thief = self.plants["theft-cluster"]
        theft_weeks = range(self.shape.weeks - 5, self.shape.weeks - 3)
        for site in self.dispensers:
            if self.rng.random() < DAMAGED_PER_SITE_DAY:
                self._decommission(site, "damaged")
            if self.rng.random() < STOLEN_PER_SITE_DAY:
                self._decommission(site, self.rng.choice(("stolen", "lost")))
            if site is thief and day // 7 in theft_weeks:
                for _ in range(self.rng.randint(1, 2)):
                    self._decommission(site, self.rng.choice(("stolen", "lost")))

    def _reorder_dispensers(self, day: int) -> None:
        for site in self.dispensers:
            assert site.supplier is not None
            if day + 3 < site.opens_day:
                continue
            for gtin in self.products:
                mean = self._mean(site, gtin, max(day + 1, site.opens_day, 7))
                if len(site.stock[gtin]) + site.on_order[gtin] < REORDER_DAYS * mean:
                    wanted = math.ceil(STOCK_DAYS * mean) - len(site.stock[gtin]) - site.on_order[gtin]
                    packs = self._take_all(site.supplier, gtin, wanted)
                    if packs:
                        self._ship(site.supplier, site, packs, day, self.rng.randint(1, 2))

    def _take_all(self, site: Site, gtin: str, count: int) -> list[supply.PackRef]:
        taken, site.stock[gtin] = site.stock[gtin][:count], site.stock[gtin][count:]
        return taken

    def _reorder_distributors(self, day: int) -> None:
        for distributor in self.distributors:
            served = [site for site in self.dispensers if site.supplier is distributor]
            for gtin, maker in self.products.items():
                mean = sum(self._mean(site, gtin, day + 7) for site in served)
                if len(distributor.stock[gtin]) + distributor.on_order[gtin] < DISTRIBUTOR_REORDER_DAYS * mean:
                    held = len(distributor.stock[gtin]) + distributor.on_order[gtin]
                    wanted = math.ceil(DISTRIBUTOR_STOCK_DAYS * mean) - held
                    self._make(maker, gtin, min(wanted, supply.PACKS_PER_TX_MAX), day)
                    self._ship(maker, distributor, self._take_all(maker, gtin, wanted), day, 2)

    def _make(self, maker: Site, gtin: str, count: int, day: int) -> None:
        first = self.serials[gtin]
        self.serials[gtin] += count
        serials = tuple(f"S{serial:09d}" for serial in range(first, first + count))
        lot = f"L{day // 7:03d}"
        self._send(maker, "supply.commission", supply.SupplyCommission(gtin, lot, "2028-12-31", serials))
        if gtin == self.controlled and not first:
            self._send(maker, "supply.product.schedule", supply.ProductSchedule(gtin, "CII"))
        maker.stock[gtin].extend(supply.PackRef(gtin, serial) for serial in serials)
        self.packs += count

    # -- the run ----------------------------------------------------------------------------------

    def day(self, day: int) -> float:
        """One simulated day as one block; returns the seconds the ledger took to execute it."""
        self._deliver(day)
        self._dispense(day)
        self._losses(day)
        self._reorder_distributors(day)
        self._reorder_dispensers(day)
        elapsed, _ = self._commit(START_MS + day * DAY_MS + DAY_MS // 2)
        return elapsed

    def scan_and_raise(self, time_ms: int, outcome: Outcome) -> None:
        """What a validator's node does: find the subjects whose evidence holds and raise each
        new one (one per rule, site and product) in a block of its own, measured."""
        started = time.perf_counter()
        found = supply.candidates(self.state, time_ms)
        outcome.scan_s.append(time.perf_counter() - started)
        topics: set[tuple[str, bytes, str, bytes]] = set()
        for subject, _ in found:
            topic = (subject.rule, subject.site, subject.product, subject.shipment)
            if topic in topics or supply.flag_of(self.state, subject) is not None:
                continue
            topics.add(topic)
            self._send(self.validators[0], "supply.flag.raise", supply.FlagRaise(subject))
            elapsed, reads = self._commit(time_ms)
            outcome.flag_raise_s.append(elapsed)
            outcome.flag_reads.append(reads)

    def outcome(self) -> Outcome:
        planted = {site.name for site in self.plants.values()}
        return Outcome(
            self.seed,
            tuple(Plant(pattern, site.name, PLANT_RULES[pattern]) for pattern, site in self.plants.items()),
            tuple(site.name for site in self.sites if site.name not in planted),
            [],
            {site.id: site.name for site in self.sites},
            0,
            0,
            [],
            [],
            [],
            [],
        )


PLANT_RULES = {
    "pill-mill": ("volume-peers",),
    "surge": ("volume-history",),
    "leaky-distributor": ("transit-loss", "custody-gap"),
    "theft-cluster": ("stolen-lost",),
    "siphon": ("balance",),
}


def run(seed: int, shape: WorldShape = WorldShape(), on_week: Callable[[int], None] | None = None) -> Outcome:
    """Simulate ``shape.weeks`` weeks from ``seed``, scanning and raising flags every week."""
    world = World(seed, shape)
    outcome = world.outcome()
    for day in range(shape.weeks * 7 + 1):
        outcome.supply_block_s.append(world.day(day))
        if day % 7 == 0 and day:
            world.scan_and_raise(START_MS + day * DAY_MS + DAY_MS // 2 + 1, outcome)
            if on_week is not None:
                on_week(day // 7)
    outcome.flags = supply.flags(world.state, 0, supply.ALERTS_PAGE_MAX)
    outcome.packs, outcome.blocks = world.packs, world.height
    return outcome
