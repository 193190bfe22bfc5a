"""GS1 codes and dates as the supply rules check them, and the checks of a body's lists."""

from __future__ import annotations

import datetime
import re

from p2pmed.ledger.contracts.supply import limits
from p2pmed.ledger.contracts.supply._model import PackRef
from p2pmed.ledger.errors import RejectReason, TxRejected

__all__ = [
    "DAY_MS",
    "check_query",
    "check_reason",
    "check_refs",
    "check_serials",
    "check_ssccs",
    "code_problem",
    "expiry_end_ms",
    "expiry_problem",
    "gs1_check_digit",
    "gtin_problem",
    "pack_name",
    "require",
    "require_query",
    "short",
    "sscc_problem",
]

DAY_MS = 86_400_000

# GS1 AI encodable character set 82, used by AI 10 (lot) and AI 21 (serial).
_CODE = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+")
_GTIN = re.compile(r"[0-9]{14}")
_SSCC = re.compile(r"[0-9]{18}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


# -- codes and dates ----------------------------------------------------------------


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit of ``digits`` (weights 3, 1, 3... from the right)."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(digits)))
    return str(-total % 10)


def gtin_problem(gtin: str) -> str | None:
    """What is wrong with a GTIN-14, or None."""
    if not _GTIN.fullmatch(gtin):
        return f"GTIN {gtin[:40]!r} must be 14 digits (a GTIN-8, -12 or -13 padded with leading zeros)"
    if gtin[-1] != gs1_check_digit(gtin[:-1]):
        return f"GTIN {gtin} has a wrong check digit: expected {gs1_check_digit(gtin[:-1])}"
    return None


def sscc_problem(sscc: str) -> str | None:
    """What is wrong with an SSCC-18 (extension digit, company prefix, serial reference, check digit), or None."""
    if not _SSCC.fullmatch(sscc):
        return f"SSCC {sscc[:40]!r} must be 18 digits"
    if sscc[-1] != gs1_check_digit(sscc[:-1]):
        return f"SSCC {sscc} has a wrong check digit: expected {gs1_check_digit(sscc[:-1])}"
    return None


def code_problem(code: str, what: str) -> str | None:
    """What is wrong with a serial or a lot number, or None."""
    if not 0 < len(code) <= limits.CODE_LENGTH_MAX or not _CODE.fullmatch(code):
        return (
            f"{what} {code[:40]!r} must be 1..{limits.CODE_LENGTH_MAX} characters of GS1 set 82 "
            "(letters, digits, !\"%&'()*+,-./:;<=>?_)"
        )
    return None


def expiry_problem(expiry: str) -> str | None:
    """What is wrong with an expiry date, or None."""
    try:
        if _ISO_DATE.fullmatch(expiry):
            datetime.date.fromisoformat(expiry)
            return None
    except ValueError:
        pass
    return f"expiry {expiry[:40]!r} must be a date as YYYY-MM-DD"


def expiry_end_ms(expiry: str) -> int:
    """The first millisecond (UTC) at which a pack expiring on ``expiry`` has expired."""
    return (datetime.date.fromisoformat(expiry).toordinal() - _EPOCH_ORDINAL + 1) * DAY_MS


def require(problem: str | None) -> None:
    if problem is not None:
        raise TxRejected(RejectReason.INVALID, problem)


def check_refs(refs: tuple[PackRef, ...], what: str, empty_ok: bool = False) -> None:
    if not (0 if empty_ok else 1) <= len(refs) <= limits.PACKS_PER_TX_MAX:
        raise TxRejected(RejectReason.INVALID, f"give {0 if empty_ok else 1}..{limits.PACKS_PER_TX_MAX} {what}")
    for ref in refs:
        require(gtin_problem(ref.gtin))
        require(code_problem(ref.serial, "serial"))
    if len(set(refs)) != len(refs):
        raise TxRejected(RejectReason.INVALID, f"a pack is listed twice in {what}")


def check_ssccs(ssccs: tuple[str, ...], what: str) -> None:
    if len(ssccs) > limits.PACKS_PER_TX_MAX:
        raise TxRejected(RejectReason.INVALID, f"give at most {limits.PACKS_PER_TX_MAX} {what}")
    for sscc in ssccs:
        require(sscc_problem(sscc))
    if len(set(ssccs)) != len(ssccs):
        raise TxRejected(RejectReason.INVALID, f"a container is listed twice in {what}")


def check_serials(serials: tuple[str, ...]) -> None:
    if not 0 < len(serials) <= limits.PACKS_PER_TX_MAX:
        raise TxRejected(RejectReason.INVALID, f"give 1..{limits.PACKS_PER_TX_MAX} serials")
    for serial in serials:
        require(code_problem(serial, "serial"))
    if len(set(serials)) != len(serials):
        raise TxRejected(RejectReason.INVALID, "a serial is listed twice")


def check_reason(reason: str) -> None:
    if not 0 < len(reason) <= limits.REASON_LENGTH_MAX or not reason.isprintable():
        raise TxRejected(RejectReason.INVALID, f"the reason must be 1..{limits.REASON_LENGTH_MAX} printable characters")


def pack_name(ref: PackRef) -> str:
    return f"pack (01){ref.gtin}(21){ref.serial}"


def short(key: bytes) -> str:
    return key.hex()[:16]


def require_query(problem: str | None) -> None:
    if problem is not None:
        raise ValueError(problem)


def check_query(gtin: str, serial: str) -> PackRef:
    require_query(gtin_problem(gtin) or code_problem(serial, "serial"))
    return PackRef(gtin, serial)
