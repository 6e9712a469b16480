"""The printable notice of a result (结果告知书): plain data in, PDF bytes out (reportlab).

Chinese is drawn with reportlab's built-in CID font ``STSong-Light`` (Adobe's Song typeface of
the Adobe-GB1 character collection, which every PDF reader carries): the file embeds no font and
the server needs none installed, so it renders the same on a fresh machine. Labels are texts of
templates/<locale>/texts/notice.j2."""

from __future__ import annotations

import io
from typing import Any

from core.render import text
from domain.inputs import printable

FONT = "STSong-Light"


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics  # lazy: only the notice page needs reportlab
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # lazy: as above

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def notice_pdf(doc: dict[str, Any], locale: str = "zh-CN") -> bytes:
    """The notice ``doc`` (services.onsite.notice.notice_document) as an A4 PDF."""
    from reportlab.lib import colors  # lazy: as in _font
    from reportlab.lib.pagesizes import A4  # lazy: as in _font
    from reportlab.lib.styles import ParagraphStyle  # lazy: as in _font
    from reportlab.lib.units import mm  # lazy: as in _font
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle  # lazy: as in _font

    font = _font()
    body = ParagraphStyle("body", fontName=font, fontSize=11, leading=17, wordWrap="CJK")
    title = ParagraphStyle("title", parent=body, fontSize=18, leading=26, alignment=1)
    small = ParagraphStyle("small", parent=body, fontSize=9, leading=13)

    def t(name: str, /, **params: Any) -> str:
        return text(name, locale, **params)

    def p(value: str, style: ParagraphStyle = body) -> Any:
        # a control character or a lone surrogate (in a firm's name, say) made the whole notice
        # fail; a character the font lacks (an emoji, 𠀀) stays in the text layer, maybe drawn blank
        safe = printable(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return Paragraph(safe, style)

    story: list[Any] = [
        p(t("notice_title"), title),
        p(t("notice_code", code=doc["code"]), small),
        Spacer(1, 4 * mm),
        p(t("notice_to", entity=doc["entity"], uscc=doc["uscc"])),
        p(
            t(
                "notice_body",
                departments="、".join(doc["departments"]),
                date=doc["date"],
                plan=doc["plan"],
                draw_ref=doc["draw_ref"],
            )
        ),
        Spacer(1, 3 * mm),
    ]
    rows = [[p(t("notice_col_no")), p(t("notice_col_item")), p(t("notice_col_basis")), p(t("notice_col_verdict"))]]
    for item in doc["items"]:
        verdict = t("verdict_" + (item["verdict"] or "none"))
        rows.append([p(str(item["no"])), p(item["name"]), p(item["basis"] or "—", small), p(verdict)])
    table = Table(rows, colWidths=[12 * mm, 55 * mm, 75 * mm, 22 * mm], repeatRows=1, splitInRow=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
            ]
        )
    )
    story += [table, Spacer(1, 4 * mm), p(t("notice_outcome", outcome=t("credit_outcome_" + doc["outcome"])))]
    if doc["rectify_by"]:
        story.append(p(t("notice_rectify", rectify_by=doc["rectify_by"])))
    story += [
        p(t("notice_objection", objection_until=doc["objection_until"], code=doc["code"])),
        Spacer(1, 8 * mm),
        p(t("notice_signature", departments="、".join(doc["departments"]), issued_on=doc["issued_on"])),
    ]
    out = io.BytesIO()
    pdf = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=t("notice_title"),
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        invariant=True,
    )
    pdf.build(story)
    return out.getvalue()
