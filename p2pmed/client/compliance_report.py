"""A verified compliance report for people: the same sections as HTML and as PDF.

Only a ``VerifiedReport`` is rendered, never the bundle's JSON as it came: what a reader
sees is what the proofs said. The sections follow HIPAA 45 CFR 164.528 (an accounting of
disclosures: date, recipient, what was disclosed, purpose), then the consent history, the
refusals and the rest of the trail; a bar chart counts disclosures per month. A site's
report adds its supply-chain events and the trials it sponsors. The PDF is
drawn with ReportLab (the ``reports`` extra), which needs no system libraries. The
``p2pmed report`` commands and the demo use it.
"""

from __future__ import annotations

import datetime
import html
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from p2pmed.consensus.report_activity import Activity
from p2pmed.consensus.report_bundle import VerifiedReport
from p2pmed.ledger.contracts.audit import AuditEntry
from p2pmed.ledger.contracts.supply import PackEvent
from p2pmed.ledger.contracts.trials import Trial

__all__ = ["Section", "render_html", "render_pdf", "sections", "verification_lines"]

DISCLOSURE_KINDS = ("record-read", "break-glass", "research-export")
REFUSAL_KINDS = ("record-read-refused",)


def _utc_time(time_ms: int | None) -> str:
    if time_ms is None:
        return "-"
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=time_ms)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Section:
    title: str
    explanation: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _short(identifier: bytes) -> str:
    return identifier.hex()[:16] + "…" if identifier else "-"


def _disclosure_row(entry: AuditEntry, by: str) -> tuple[str, ...]:
    what = f"{entry.category or '-'} record {_short(entry.record_id)}" if entry.record_id else entry.category or "-"
    if by != "patient":
        what = f"{what} of patient {_short(entry.patient)}"
    purpose = entry.purpose or "-"
    if entry.kind == "break-glass":
        purpose = f"EMERGENCY ({purpose}): {entry.detail}"
    elif entry.kind == "research-export":
        purpose = f"research ({purpose}) {entry.detail}".strip()
    return (_utc_time(entry.time_ms), _short(entry.actor), what, purpose, str(entry.height))


def _plain_row(entry: AuditEntry) -> tuple[str, ...]:
    facts = " ".join(part for part in (entry.category, entry.purpose, entry.detail) if part)
    return (_utc_time(entry.time_ms), entry.kind, _short(entry.actor), facts or "-", str(entry.height))


def _supply_row(activity: Activity, event: PackEvent) -> tuple[str, ...]:
    pack = activity.key.removeprefix("supply/event/").rsplit("/", 1)[0]
    party = _short(event.party) if event.party else "-"
    return (_utc_time(event.time_ms), event.kind, pack, f"{party} {event.detail}".strip(), str(event.height))


def _trial_row(trial: Trial) -> tuple[str, ...]:
    flagged = "OUTCOME SWITCHING FLAGGED" if trial.flagged else "no flag"
    return (
        _utc_time(trial.versions[0].time_ms) if trial.versions else "-",
        trial.trial_id,
        f"{len(trial.versions)} protocol version(s)",
        f"{trial.enrolled} enrolled, {trial.withdrawn} withdrawn, {len(trial.results)} result(s); {flagged}",
        str(trial.versions[0].height) if trial.versions else "-",
    )


def _site_sections(report: VerifiedReport) -> tuple[Section, ...]:
    if report.proof.by != "site":
        return ()
    supply = tuple(
        _supply_row(activity, activity.value) for activity in report.activity if isinstance(activity.value, PackEvent)
    )
    trials = tuple(_trial_row(activity.value) for activity in report.activity if isinstance(activity.value, Trial))
    return (
        Section(
            "Supply-chain activity",
            "Drug pack events this site recorded (commission, ship, receive, dispense, ...); each proved, not proved"
            " to be all of them.",
            ("Date (UTC)", "Event", "Pack (GTIN/serial)", "Other party, details", "Block"),
            supply,
        ),
        Section(
            "Clinical trials sponsored",
            "Trials this site sponsors, as they stand at the report's block; each proved, not proved to be all.",
            ("Registered (UTC)", "Trial", "Protocol", "Enrolment and results", "Block"),
            trials,
        ),
    )


def sections(report: VerifiedReport) -> tuple[Section, ...]:
    return (*_trail_sections(report.entries, report.proof.by), *_site_sections(report))


def _trail_sections(entries: tuple[AuditEntry, ...], by: str) -> tuple[Section, ...]:
    plain_columns = ("Date (UTC)", "Event", "By", "Details", "Block")
    return (
        Section(
            "Accounting of disclosures",
            "Every read of a record, emergency (break-glass) access and research export, with the fields of"
            " 45 CFR 164.528(b)(2). It includes reads for treatment (TREAT), which 164.528(a)(1)(i) exempts.",
            ("Date (UTC)", "Recipient", "What was disclosed", "Purpose", "Block"),
            tuple(_disclosure_row(entry, by) for entry in entries if entry.kind in DISCLOSURE_KINDS),
        ),
        Section(
            "Consent history",
            "Every consent granted, revoked, denied or delegated, and study consents.",
            plain_columns,
            tuple(_plain_row(entry) for entry in entries if entry.kind.startswith("consent-")),
        ),
        Section(
            "Refusals",
            "Reads the network refused (no consent in force, a deny, an expired grant).",
            plain_columns,
            tuple(_plain_row(entry) for entry in entries if entry.kind in REFUSAL_KINDS),
        ),
        Section(
            "Other activity",
            "Records written or erased, and reviews of emergency access.",
            plain_columns,
            tuple(
                _plain_row(entry)
                for entry in entries
                if entry.kind not in (*DISCLOSURE_KINDS, *REFUSAL_KINDS) and not entry.kind.startswith("consent-")
            ),
        ),
    )


def disclosures_per_month(report: VerifiedReport) -> list[tuple[str, int]]:
    counted = Counter(_utc_time(entry.time_ms)[:7] for entry in report.entries if entry.kind in DISCLOSURE_KINDS)
    return sorted(counted.items())


def verification_lines(report: VerifiedReport, genesis_hash: bytes) -> list[str]:
    """What was checked, in words a compliance officer can repeat."""
    proof = report.proof
    header = proof.header
    start = _utc_time(proof.since_ms) if proof.since_ms else "the start of the chain"
    end = _utc_time(proof.until_ms) if proof.until_ms is not None else f"block {header.height}"
    changes = len(report.epochs)
    completeness = (
        f"Complete: the ledger holds {report.count} entries for this {proof.by}, and all of them are here."
        if proof.complete
        else f"Not proved complete: {len(report.entries)} of the {report.count} entries for this {proof.by}"
        " (those of the period) are here; that none of the period's was left out is not proved."
    )
    return [
        f"Subject: {proof.by} {proof.subject.hex()}" if proof.subject else "Subject: every patient of the network",
        f"Period: {start} to {end}",
        f"Chain: {proof.chain_id}, genesis {genesis_hash.hex()}",
        f"Each entry is proved to block {header.height} ({_utc_time(header.time_ms)}), certified by"
        f" {len(proof.certificate.commits)} validators of epoch {report.anchor_epoch}; its hash"
        f" {report.anchor_block_hash.hex()} is what any site shows for that height (p2pmed block get"
        f" {header.height}).",
        f"Validator sets followed from genesis through {changes} change{'' if changes == 1 else 's'},"
        " each certified by the set before it.",
        completeness,
    ]


# -- HTML ------------------------------------------------------------------------------------------


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #eef; }
.verified { background: #efe; border: 1px solid #7b7; padding: 0.5em 1em; }
.empty { color: #777; font-style: italic; }
"""


def _html_chart(months: list[tuple[str, int]]) -> str:
    if not months:
        return ""
    top = max(count for _, count in months)
    bar_width, height = 40, 120
    bars = []
    for index, (month, count) in enumerate(months):
        bar = int(height * count / top)
        x = 10 + index * (bar_width + 10)
        bars.append(
            f'<rect x="{x}" y="{height - bar + 20}" width="{bar_width}" height="{bar}" fill="#557"/>'
            f'<text x="{x}" y="{height + 35}" font-size="10">{html.escape(month)}</text>'
            f'<text x="{x + 12}" y="{height - bar + 15}" font-size="10">{count}</text>'
        )
    width = 20 + len(months) * (bar_width + 10)
    return (
        f'<h3>Disclosures per month</h3><svg width="{width}" height="{height + 45}"'
        f' role="img" aria-label="disclosures per month">{"".join(bars)}</svg>'
    )


def _html_section(section: Section) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in section.columns)
    if section.rows:
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in section.rows
        )
        table = f"<table><tr>{head}</tr>{body}</table>"
    else:
        table = '<p class="empty">None in this period.</p>'
    return f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.explanation)}</p>{table}"


def render_html(report: VerifiedReport, genesis_hash: bytes, path: Path) -> None:
    checked = "".join(f"<p>{html.escape(line)}</p>" for line in verification_lines(report, genesis_hash))
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>Compliance report: {html.escape(report.proof.by)} {report.proof.subject.hex()[:16]}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Compliance report</h1>",
        f'<div class="verified"><p><b>Verified offline from genesis.</b></p>{checked}</div>',
        _html_chart(disclosures_per_month(report)),
        *(_html_section(section) for section in sections(report)),
        "</body></html>",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")


# -- PDF -------------------------------------------------------------------------------------------


def render_pdf(report: VerifiedReport, genesis_hash: bytes, path: Path) -> None:
    """Raise ``ImportError`` when ReportLab (the ``reports`` extra) is not installed."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=8, leading=10)
    story: list[object] = [Paragraph("Compliance report", styles["Title"])]
    story.append(Paragraph("<b>Verified offline from genesis.</b>", styles["BodyText"]))
    story.extend(Paragraph(html.escape(line), styles["BodyText"]) for line in verification_lines(report, genesis_hash))
    chart = _pdf_chart(disclosures_per_month(report))
    if chart is not None:
        story.extend([Spacer(1, 12), Paragraph("Disclosures per month", styles["Heading3"]), chart])
    for section in sections(report):
        story.extend([Spacer(1, 12), Paragraph(html.escape(section.title), styles["Heading2"])])
        story.append(Paragraph(html.escape(section.explanation), styles["BodyText"]))
        if not section.rows:
            story.append(Paragraph("<i>None in this period.</i>", styles["BodyText"]))
            continue
        rows = [[Paragraph(html.escape(text), cell) for text in row] for row in (section.columns, *section.rows)]
        table = Table(rows, repeatRows=1, colWidths=[100, 110, 150, 330, 50])
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeff")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(table)
    SimpleDocTemplate(str(path), pagesize=landscape(A4), title="p2pmed compliance report").build(story)


def _pdf_chart(months: list[tuple[str, int]]) -> object | None:
    if not months:
        return None
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing

    drawing = Drawing(400, 160)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, 340, 110
    chart.data = [[count for _, count in months]]
    chart.categoryAxis.categoryNames = [month for month, _ in months]
    chart.valueAxis.valueMin = 0
    drawing.add(chart)
    flowable: object = drawing  # ReportLab has no type hints
    return flowable
