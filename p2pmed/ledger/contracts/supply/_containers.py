"""Aggregation: packs in cases, cases in pallets, each a GS1 logistic unit named by its SSCC-18.

Theory of operation. The first ``supply.aggregate`` naming a new SSCC opens that
container for its sender, which then holds it; from then on only its holder packs into
it or takes out of it (``supply.disaggregate``), and only while it is held loose: not
in transit, not ended, not itself packed in another container (a case on a pallet is
closed until it is taken off). Children are packs and containers the same organisation
holds loose, so a pack or a container is in one container at most, and never in
itself; since the parent and every child are loose when they meet, no cycle can form.

A pack in a container moves only with it: shipping, dispensing, decommissioning or
packing it alone is refused until it is taken out. Shipping a container ships all it
holds (every pack gets its own ship event, as if listed loose, with the same checks:
a recalled pack travels only back to its manufacturer); receiving it, or declaring it
missing, does the same for the receipt.

Limits (``limits``): a container with all it holds is at most
``ITEMS_PER_CONTAINER_MAX`` items (packs and containers, itself included) and
``CONTAINER_DEPTH_MAX`` levels; its history holds ``CONTAINER_EVENTS_MAX`` events.
A container emptied by a disaggregation is retired, since GS1 does not reuse an SSCC.
"""

from __future__ import annotations

from dataclasses import replace

from p2pmed.ledger.contracts.supply import limits
from p2pmed.ledger.contracts.supply._codes import check_refs, check_ssccs, pack_name, require, sscc_problem
from p2pmed.ledger.contracts.supply._model import (
    Container,
    PackRef,
    SupplyAggregate,
    SupplyDisaggregate,
)
from p2pmed.ledger.contracts.supply._store import (
    container_key,
    container_name,
    held_container,
    held_pack,
    member_key,
    record_container,
    require_organisation,
)
from p2pmed.ledger.contracts.supply._suspects import refuse_quarantined
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = ["apply_aggregate", "apply_disaggregate", "contents", "take_containers"]


def _open(state: StateOverlay, holder: bytes, sscc: str) -> Container:
    """The container to pack into: held by ``holder``, or new."""
    if state.get(Container, container_key(sscc)) is None:
        return Container(sscc, holder, "held", None, (), (), 1, 1, None, 0)
    return held_container(state, holder, sscc, "pack into")


def _check_children(packs: tuple[PackRef, ...], containers: tuple[str, ...]) -> None:
    check_refs(packs, "packs", empty_ok=True)
    check_ssccs(containers, "containers")


def apply_aggregate(state: StateOverlay, context: TxContext, body: SupplyAggregate) -> None:
    holder = require_organisation(state, context, "packs containers")
    require(sscc_problem(body.parent))
    _check_children(body.packs, body.containers)
    name = container_name(body.parent)
    if not body.packs and not body.containers:
        raise TxRejected(RejectReason.INVALID, f"list the packs or containers to pack into {name}")
    if body.parent in body.containers:
        raise TxRejected(RejectReason.INVALID, f"{name} cannot be packed into itself")
    parent = _open(state, holder, body.parent)
    items, depth = parent.items + len(body.packs), parent.depth
    for ref in body.packs:
        held_pack(state, holder, ref, "pack")
        refuse_quarantined(state, ref, "pack")
        state.put(member_key(ref), body.parent)
    for sscc in body.containers:
        child = held_container(state, holder, sscc, "pack")
        assert child.items <= limits.ITEMS_PER_CONTAINER_MAX and child.depth <= limits.CONTAINER_DEPTH_MAX
        items, depth = items + child.items, max(depth, child.depth + 1)
        state.put(container_key(sscc), replace(child, parent=body.parent))
    if items > limits.ITEMS_PER_CONTAINER_MAX:
        raise TxRejected(
            RejectReason.INVALID,
            f"{name} would hold {items - 1} items (packs and containers at every depth); a container and all it"
            f" holds are at most {limits.ITEMS_PER_CONTAINER_MAX} items, what one transaction moves",
        )
    if depth > limits.CONTAINER_DEPTH_MAX:
        raise TxRejected(
            RejectReason.INVALID,
            f"{name} would nest {depth} levels of containers; at most {limits.CONTAINER_DEPTH_MAX}",
        )
    parent = record_container(state, context, holder, parent, "aggregate", None, body.packs, body.containers)
    grown = replace(
        parent,
        packs=parent.packs + body.packs,
        containers=parent.containers + body.containers,
        items=items,
        depth=depth,
    )
    state.put(container_key(body.parent), grown)


def apply_disaggregate(state: StateOverlay, context: TxContext, body: SupplyDisaggregate) -> None:
    holder = require_organisation(state, context, "unpacks containers")
    require(sscc_problem(body.parent))
    _check_children(body.packs, body.containers)
    parent = held_container(state, holder, body.parent, "unpack")
    name = container_name(body.parent)
    everything = not body.packs and not body.containers
    packs, containers = (parent.packs, parent.containers) if everything else (body.packs, body.containers)
    inside = set(parent.packs)
    for ref in packs:
        if ref not in inside:
            raise TxRejected(RejectReason.INVALID, f"{pack_name(ref)} is not packed in {name}")
        state.delete(member_key(ref))
    items = parent.items - len(packs)
    for sscc in containers:
        if sscc not in parent.containers:
            raise TxRejected(RejectReason.INVALID, f"{container_name(sscc)} is not packed in {name}")
        child = state.get(Container, container_key(sscc))
        assert child is not None and child.parent == body.parent, "a container lists only its children"
        items -= child.items
        state.put(container_key(sscc), replace(child, parent=None))
    taken_packs, taken_containers = set(packs), set(containers)
    left_packs = tuple(ref for ref in parent.packs if ref not in taken_packs)
    left_containers = tuple(sscc for sscc in parent.containers if sscc not in taken_containers)
    depth = max([1, *(_depth_below(state, sscc) + 1 for sscc in left_containers)])
    parent = record_container(state, context, holder, parent, "disaggregate", None, packs, containers)
    status = "held" if left_packs or left_containers else "emptied"
    assert (status == "emptied") == (items == 1), "an empty container counts only itself"
    shrunk = replace(parent, status=status, packs=left_packs, containers=left_containers, items=items, depth=depth)
    state.put(container_key(body.parent), shrunk)


def _depth_below(state: StateReader, sscc: str) -> int:
    child = StateOverlay(state).get(Container, container_key(sscc))
    assert child is not None
    return child.depth


def contents(state: StateReader, top: Container) -> tuple[list[PackRef], list[Container]]:
    """Every pack and container in ``top`` at every depth, ``top`` first among the containers."""
    view = StateOverlay(state)
    packs: list[PackRef] = []
    containers: list[Container] = []
    stack = [top]
    while stack:
        found = stack.pop()
        containers.append(found)
        packs.extend(found.packs)
        for sscc in reversed(found.containers):
            child = view.get(Container, container_key(sscc))
            assert child is not None and child.parent == found.sscc, "a container lists only its children"
            stack.append(child)
    assert len(packs) + len(containers) == top.items <= limits.ITEMS_PER_CONTAINER_MAX
    return packs, containers


def take_containers(
    state: StateOverlay, holder: bytes, ssccs: tuple[str, ...], loose_packs: int, action: str
) -> list[Container]:
    """The loose containers ``holder`` holds, checked, once the items they and ``loose_packs`` make fit one
    transaction."""
    check_ssccs(ssccs, "containers")
    taken = [held_container(state, holder, sscc, action) for sscc in ssccs]
    items = loose_packs + sum(found.items for found in taken)
    if items > limits.ITEMS_MOVED_PER_TX_MAX:
        raise TxRejected(
            RejectReason.INVALID,
            f"this would {action} {items} items (loose packs, containers and all they hold); a transaction"
            f" moves at most {limits.ITEMS_MOVED_PER_TX_MAX}",
        )
    return taken
