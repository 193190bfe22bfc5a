"""Drug supply chain: serialised packs followed from commissioning to dispensing,
after GS1 EPCIS 2.0 and its Core Business Vocabulary.

A pack is named as GS1 names it: a GTIN-14 (14 digits, the last one the GS1
mod-10 check digit) and a serial number (AI 21: 1..20 characters of GS1 character
set 82). Every transaction is signed by an organisation in force, the acting party.
Organisations are named by id (the key they were admitted with): holders,
manufacturers, shipment ends, history entries and alerts keep the id, so custody
stays continuous when an organisation rotates its keys.

- ``supply.commission``: a manufacturer commissions 1..1000 serials of one GTIN
  and lot. The expiry is an ISO date (``YYYY-MM-DD``, as EPCIS
  ``itemExpirationDate``): the pack may be dispensed until the end of that day, UTC.
  The GTIN must carry a GS1 company prefix granted to the manufacturer
  (``supply.prefix.grant``, by a regulator or 2f+1 validators; rules in ``_prefixes``),
  which then owns it (the brand owner): nobody else commissions or recalls it. A
  lot keeps the expiry it was first commissioned with. Each pack starts in its
  manufacturer's custody.
- ``supply.ship``: the holder ships packs to another organisation in force. The
  shipment's id is the transaction's id; its packs are in transit, still held by
  the shipper, until the destination receives them. Custody is continuous: only
  the holder ships, and the holder is always the last organisation that received
  the pack (or its manufacturer).
- ``supply.receive``: the destination receives a shipment once, listing the packs
  that arrived and those that did not (``missing``); together they must be exactly
  the shipment, so a shortfall is declared, never implied. Arrived packs pass into
  the receiver's custody; missing ones stay missing for good, each with an alert
  (a possible diversion).
- ``supply.dispense``: a pharmacy or hospital dispenses packs it holds, each once,
  unless recalled or expired at the block's time. The patient is not named: who
  takes which medicine is health data and stays at the pharmacy.
- ``supply.decommission``: the holder takes packs out of circulation, for a reason.
- ``supply.recall``: the GTIN's manufacturer recalls a lot or listed serials.
  Recalled packs are never dispensed and are shipped only back to their
  manufacturer; they are still received and decommissioned.
- ``supply.aggregate`` / ``supply.disaggregate``: the holder packs loose packs and
  containers into a container named by its SSCC-18 (a case, a pallet), or takes them
  out. A packed pack moves only with its container: ``supply.ship`` and
  ``supply.receive`` list whole containers besides loose packs, and apply each event
  to every pack inside. Rules and limits in ``_containers``.
- ``supply.suspect.*``: the suspect-product lifecycle, quarantine to notice, with
  deadlines in ledger time; a quarantined pack is never shipped, packed or dispensed.
  Rules in ``_suspects``.
- ``supply.flag.*``: diversion flags. The custody rules keep weekly counts per site and
  product (``_tally``); the signals (``_signals``: stock never accounted for, dispense
  volumes out of line with the site's history or its peers, stolen/lost and in-transit
  loss rates, custody gaps) are pure functions of them and ledger time, with their
  thresholds in ``thresholds``. A validator or a regulator raises a flag naming a subject;
  the ledger recomputes its evidence and refuses the flag if it does not hold; overseers
  review and close it with a finding. ``supply.product.schedule``: a GTIN's maker declares
  it a controlled substance, watched by stricter thresholds. Rules in ``_flags``.
- ``supply.signals.clock``: 2f+1 validators set the signals' week (7 days unless voted), once,
  on a chain that has counted nothing yet: a demo's or a test's, whose weeks last seconds.
  Rules in ``_clock``; every use of the week reads it through ``_week``.
- ``supply.epcis.record``: any organisation keeps an EPCIS event the rules have no use for
  (an inspection, a TransactionEvent, a TransformationEvent...), listed under the packs it
  holds or made. Rules in ``_records``.
- ``supply.product.storage`` / ``supply.sensor.report``: a brand owner declares a product's
  storage temperatures; a shipment's parties record its data logger's readings, and readings
  outside the range raise a ``cold-chain-breach`` alert. Rules in ``_coldchain``.
- Saleable returns: a pack received by an organisation that held it before is a return,
  shipped or dispensed again only after that organisation's ``supply.verify`` scan of its
  four elements finds it genuine. Rules in ``_returns``.
- ``supply.verify``: any organisation records a scan of a pack: the four elements
  of its DSCSA product identifier (GTIN, serial, lot, expiry), all of which must
  match what was commissioned (a copied serial on another lot or expiry is a suspect
  product). It is refused only for a malformed code or an unauthorised sender,
  because a refused transaction records nothing and an unknown serial is exactly
  what must be recorded. A scan whose verdict is alarming (``ALERT_STATUSES``: an
  unknown serial is a suspect counterfeit) also adds an entry to the alert log.

Alerts are raised too when a pack is decommissioned as stolen or lost, and when a
dispense is refused because a pack was already dispensed, decommissioned or
reported missing (a second pack bearing that serial is at the counter: a clone).

State per pack is one small ``Pack``; its history is a list of keyed entries, and
bounded: a pack is shipped at most ``SHIPMENTS_PER_PACK_MAX`` times and its first
``SCANS_LISTED_MAX`` scans are listed (later ones are only counted). A recall is
one entry on the pack or the lot, and ``trace`` lists it after the pack's events of
the same block. The queries (``pack``, ``shipment``, ``shipment_of``, ``trace``,
``verify``, ``alerts``, ``alert_count``) read a state for the RPC layer.

The package, one module per job: ``limits`` (every bound, read when a rule runs),
``_model`` (bodies, records, the words for a pack's state), ``_codes`` (GS1 codes and
dates), ``_store`` (state keys, histories, alerts, the checks shared by the rules),
``_prefixes`` (who commissions which GTINs), ``_custody`` (the rules that move packs),
``_containers`` (aggregation), ``_verify`` (verdicts and scans), ``_suspects`` (suspect products),
``_tally``, ``_week``, ``_clock``, ``_signals``, ``thresholds`` and ``_flags`` (diversion),
``_records`` (kept EPCIS events), ``_coldchain`` (storage temperatures and sensor readings),
``_returns`` (saleable returns) and ``_queries`` (reads for the RPC layer).
"""

from __future__ import annotations

from p2pmed.ledger.contracts.supply import limits, thresholds
from p2pmed.ledger.contracts.supply._clock import (
    CLOCK_TX_TYPES,
    WEEK_MS_MAX,
    WEEK_MS_MIN,
    SignalClock,
    clock_fixed,
)
from p2pmed.ledger.contracts.supply._codes import (
    DAY_MS,
    code_problem,
    expiry_end_ms,
    expiry_problem,
    gs1_check_digit,
    gtin_problem,
    sscc_problem,
)
from p2pmed.ledger.contracts.supply._coldchain import (
    COLD_CHAIN_BREACH,
    COLD_CHAIN_TX_TYPES,
    TEMPERATURE_CENTI_C_MAX,
    TEMPERATURE_CENTI_C_MIN,
    KeptReport,
    ProductStorage,
    SensorReading,
    SensorReport,
    sensor_reports,
    storage_of,
)
from p2pmed.ledger.contracts.supply._containers import apply_aggregate, apply_disaggregate
from p2pmed.ledger.contracts.supply._containers import contents as container_contents
from p2pmed.ledger.contracts.supply._custody import (
    apply_commission,
    apply_decommission,
    apply_dispense,
    apply_recall,
    apply_receive,
    apply_ship,
    refused_dispense,
)
from p2pmed.ledger.contracts.supply._flags import (
    FINDINGS,
    FLAG_TX_TYPES,
    OVERSEER_KIND,
    SCHEDULES,
    Flag,
    FlagClose,
    FlagRaise,
    FlagReview,
    FlagStep,
    ProductSchedule,
    flag,
    flag_count,
    flag_of,
    flags,
)
from p2pmed.ledger.contracts.supply._model import (
    ALERT_STATUSES,
    DECOMMISSION_REASONS,
    DISPENSER_KINDS,
    VERDICT_STATUSES,
    Alert,
    Container,
    ContainerEvent,
    Lot,
    Pack,
    PackEvent,
    PackRef,
    Recall,
    Receipt,
    Shipment,
    SupplyAggregate,
    SupplyCommission,
    SupplyDecommission,
    SupplyDisaggregate,
    SupplyDispense,
    SupplyRecall,
    SupplyReceive,
    SupplyShip,
    SupplyVerify,
    Verdict,
)
from p2pmed.ledger.contracts.supply._prefixes import (
    PREFIX_TX_TYPES,
    PrefixGrant,
    PrefixRevoke,
    prefix_of,
    prefix_owner,
    prefix_problem,
)
from p2pmed.ledger.contracts.supply._queries import (
    alert_count,
    alerts,
    container,
    container_history,
    container_of,
    lot_packs,
    lot_record,
    pack,
    packs_matching,
    shipment,
    shipment_of,
    trace,
)
from p2pmed.ledger.contracts.supply._records import (
    EVENT_JSON_SIZE_MAX,
    EVENT_TYPES,
    RECORD_TX_TYPES,
    RECORDS_PER_PACK_MAX,
    EpcisRecord,
    RecordedEvent,
    biz_step_problem,
    epcis_record,
    pack_records,
)
from p2pmed.ledger.contracts.supply._returns import pending_return
from p2pmed.ledger.contracts.supply._signals import RULES, Evidence, FlagSubject, NoSignal, candidates, evidence
from p2pmed.ledger.contracts.supply._suspects import (
    CLASSIFICATIONS,
    SUSPECT_TX_TYPES,
    SuspectCase,
    SuspectClear,
    SuspectIllegitimate,
    SuspectInvestigate,
    SuspectNotify,
    SuspectQuarantine,
    SuspectStep,
    overdue,
    quarantine_of,
    suspect_case,
    suspect_cases,
    suspect_count,
)
from p2pmed.ledger.contracts.supply._tally import ALL_PRODUCTS, Tally, schedule_of, tally
from p2pmed.ledger.contracts.supply._verify import apply_verify, verify
from p2pmed.ledger.contracts.supply._week import signal_week_ms, voted_week_ms, week_of
from p2pmed.ledger.contracts.supply.limits import (
    ALERTS_PAGE_MAX,
    LOT_PACKS_MAX,
    PACKS_PER_TX_MAX,
    SCANS_LISTED_MAX,
    SHIPMENTS_PER_PACK_MAX,
)
from p2pmed.ledger.rules import TxType

__all__ = [
    "ALERTS_PAGE_MAX",
    "ALERT_STATUSES",
    "ALL_PRODUCTS",
    "CLASSIFICATIONS",
    "COLD_CHAIN_BREACH",
    "DAY_MS",
    "DECOMMISSION_REASONS",
    "DISPENSER_KINDS",
    "EVENT_JSON_SIZE_MAX",
    "EVENT_TYPES",
    "FINDINGS",
    "LOT_PACKS_MAX",
    "OVERSEER_KIND",
    "PACKS_PER_TX_MAX",
    "RECORDS_PER_PACK_MAX",
    "RULES",
    "SCANS_LISTED_MAX",
    "SCHEDULES",
    "SHIPMENTS_PER_PACK_MAX",
    "TEMPERATURE_CENTI_C_MAX",
    "TEMPERATURE_CENTI_C_MIN",
    "TX_TYPES",
    "VERDICT_STATUSES",
    "WEEK_MS_MAX",
    "WEEK_MS_MIN",
    "Alert",
    "Container",
    "ContainerEvent",
    "EpcisRecord",
    "Evidence",
    "Flag",
    "FlagClose",
    "FlagRaise",
    "FlagReview",
    "FlagStep",
    "FlagSubject",
    "KeptReport",
    "Lot",
    "NoSignal",
    "Pack",
    "PackEvent",
    "PackRef",
    "PrefixGrant",
    "PrefixRevoke",
    "ProductSchedule",
    "ProductStorage",
    "Recall",
    "Receipt",
    "RecordedEvent",
    "SensorReading",
    "SensorReport",
    "Shipment",
    "SignalClock",
    "SupplyAggregate",
    "SupplyCommission",
    "SupplyDecommission",
    "SupplyDisaggregate",
    "SupplyDispense",
    "SupplyRecall",
    "SupplyReceive",
    "SupplyShip",
    "SupplyVerify",
    "SuspectCase",
    "SuspectClear",
    "SuspectIllegitimate",
    "SuspectInvestigate",
    "SuspectNotify",
    "SuspectQuarantine",
    "SuspectStep",
    "Tally",
    "Verdict",
    "alert_count",
    "alerts",
    "biz_step_problem",
    "candidates",
    "clock_fixed",
    "code_problem",
    "container",
    "container_contents",
    "container_history",
    "container_of",
    "epcis_record",
    "evidence",
    "expiry_end_ms",
    "expiry_problem",
    "flag",
    "flag_count",
    "flag_of",
    "flags",
    "gs1_check_digit",
    "gtin_problem",
    "limits",
    "lot_packs",
    "lot_record",
    "overdue",
    "pack",
    "pack_records",
    "packs_matching",
    "pending_return",
    "prefix_of",
    "prefix_owner",
    "prefix_problem",
    "quarantine_of",
    "schedule_of",
    "sensor_reports",
    "shipment",
    "shipment_of",
    "signal_week_ms",
    "sscc_problem",
    "storage_of",
    "suspect_case",
    "suspect_cases",
    "suspect_count",
    "tally",
    "thresholds",
    "trace",
    "verify",
    "voted_week_ms",
    "week_of",
]

TX_TYPES = (
    TxType("supply.commission", SupplyCommission, apply_commission),
    TxType("supply.ship", SupplyShip, apply_ship),
    TxType("supply.receive", SupplyReceive, apply_receive),
    TxType("supply.dispense", SupplyDispense, apply_dispense, refused_dispense),
    TxType("supply.decommission", SupplyDecommission, apply_decommission),
    TxType("supply.recall", SupplyRecall, apply_recall),
    TxType("supply.verify", SupplyVerify, apply_verify),
    TxType("supply.aggregate", SupplyAggregate, apply_aggregate),
    TxType("supply.disaggregate", SupplyDisaggregate, apply_disaggregate),
    *PREFIX_TX_TYPES,
    *RECORD_TX_TYPES,
    *COLD_CHAIN_TX_TYPES,
    *SUSPECT_TX_TYPES,
    *FLAG_TX_TYPES,
    *CLOCK_TX_TYPES,
)
