#!/usr/bin/env python3
"""Writes the sample workbooks in samples/inbox/ (pricelist-acme-2026-11.xlsx and
orders-2026-11-03.xlsx).

Standard library only, and byte-for-byte reproducible: parts are written in a fixed order
with a fixed timestamp, so re-running this script reproduces the committed files exactly
(check with `git diff --stat samples/`). The workbooks are what Excel itself writes at its
simplest: shared strings, real date cells (serial numbers with a date number format), and
numbers as numbers.

Usage: python3 scripts/make-sample-sheets.py [output-dir]   (default: samples/inbox)
"""

import datetime
import os
import sys
import zipfile
from xml.sax.saxutils import escape

FIXED_TIME = (2026, 11, 3, 8, 0, 0)
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"

# Style indexes into cellXfs below.
GENERAL, DATE, MONEY = 0, 1, 2


class Date:
    """A calendar date, written as an Excel serial number in the 1900 date system."""

    def __init__(self, y, m, d):
        self.value = datetime.date(y, m, d)

    def serial(self):
        return (self.value - datetime.date(1899, 12, 30)).days


class Money:
    """A decimal amount shown with two decimals (stored as a plain number, as Excel does)."""

    def __init__(self, text):
        self.text = text


def col_letters(i):
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def gtin13(base12):
    """A GTIN-13 with its check digit, so the sample's GTINs are valid."""
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(base12))
    return base12 + str((10 - total % 10) % 10)


def write_xlsx(path, sheet_name, rows):
    strings, index = [], {}

    def sst(s):
        if s not in index:
            index[s] = len(strings)
            strings.append(s)
        return index[s]

    xml_rows = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, v in enumerate(row):
            ref = f"{col_letters(c)}{r}"
            if v is None or v == "":
                continue
            if isinstance(v, str):
                cells.append(f'<c r="{ref}" t="s"><v>{sst(v)}</v></c>')
            elif isinstance(v, Date):
                cells.append(f'<c r="{ref}" s="{DATE}"><v>{v.serial()}</v></c>')
            elif isinstance(v, Money):
                cells.append(f'<c r="{ref}" s="{MONEY}"><v>{v.text}</v></c>')
            else:
                cells.append(f'<c r="{ref}"><v>{v}</v></c>')
        xml_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    width = max(len(r) for r in rows)
    dim = f"A1:{col_letters(width - 1)}{len(rows)}"

    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><dimension ref="{dim}"/>'
        '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
        'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
        '<sheetFormatPr defaultRowHeight="15"/>'
        f'<sheetData>{"".join(xml_rows)}</sheetData></worksheet>'
    )
    shared = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<sst xmlns="{MAIN_NS}" count="{len(strings)}" uniqueCount="{len(strings)}">'
        + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
        + "</sst>"
    )
    styles = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<styleSheet xmlns="{MAIN_NS}">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        "</cellXfs>"
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    )
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><workbookPr/>'
        f'<sheets><sheet name="{escape(sheet_name)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{PKG_REL_NS}">'
        f'<Relationship Id="rId1" Type="{REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{REL_NS}/styles" Target="styles.xml"/>'
        f'<Relationship Id="rId3" Type="{REL_NS}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>"
    )
    root_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{PKG_REL_NS}">'
        f'<Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/>'
        f'<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/>'
        "</Types>"
    )
    parts = [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", root_rels),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", workbook_rels),
        ("xl/styles.xml", styles),
        ("xl/sharedStrings.xml", shared),
        ("xl/worksheets/sheet1.xml", sheet),
    ]
    with zipfile.ZipFile(path, "w") as z:
        for name, text in parts:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, text.encode("utf-8"), compresslevel=9)


def pricelist():
    valid = Date(2026, 11, 1)
    header = ["sku", "description", "gtin", "uom", "price", "currency", "valid_from", "min_order_qty"]
    items = [
        ("ACM-1001", "Hex bolt M8x40, zinc plated", "400638133393", "BOX", "12.40", 10),
        ("ACM-1002", "Hex nut M8, zinc plated", "400638133394", "BOX", "6.95", 10),
        ("ACM-1003", "Washer 8.4 mm DIN 125", "400638133395", "BOX", "4.10", 20),
        ("ACM-2001", "Cordless drill 18 V, 2 batteries", "400638133396", "EA", "149.00", 1),
        ("ACM-2002", "Drill bit set HSS, 19 pcs", "400638133397", "SET", "24.90", 2),
        ("ACM-3001", "Safety gloves, size 9", "400638133398", "PR", "3.85", 12),
        # The bad row: a negative price, as a typo in the supplier's file would give.
        ("ACM-3002", "Safety glasses, clear", "400638133399", "EA", "-5.20", 6),
        ("ACM-4001", "Cable ties 200 mm, black (100)", "400638133400", "PK", "7.49", 5),
        ("ACM-4002", "Insulating tape 19 mm x 20 m", "400638133401", "EA", "1.99", 10),
        ("ACM-5001", "Work bench 1500 x 750 mm", "400638133402", "EA", "389.00", 1),
    ]
    rows = [header]
    for sku, desc, gtin, uom, price, moq in items:
        rows.append([sku, desc, gtin13(gtin), uom, Money(price), "EUR", valid, moq])
    # One item priced from a later date.
    rows[4][6] = Date(2026, 11, 15)
    return rows


def orders():
    header = [
        "order_no", "line_no", "order_date", "customer_id", "sku",
        "description", "quantity", "unit_price", "currency",
    ]
    lines = [
        ("SO-26-11-0101", 1, Date(2026, 11, 2), "C-00417", "ACM-1001", "Hex bolt M8x40, zinc plated", 20, "12.40"),
        ("SO-26-11-0101", 2, Date(2026, 11, 2), "C-00417", "ACM-1002", "Hex nut M8, zinc plated", 20, "6.95"),
        ("SO-26-11-0101", 3, Date(2026, 11, 2), "C-00417", "ACM-1003", "Washer 8.4 mm DIN 125", 40, "4.10"),
        ("SO-26-11-0102", 1, Date(2026, 11, 3), "C-01022", "ACM-2001", "Cordless drill 18 V, 2 batteries", 2, "149.00"),
        ("SO-26-11-0102", 2, Date(2026, 11, 3), "C-01022", "ACM-2002", "Drill bit set HSS, 19 pcs", 2, "24.90"),
        ("SO-26-11-0103", 1, Date(2026, 11, 3), "C-00088", "ACM-3001", "Safety gloves, size 9", 48, "3.85"),
        ("SO-26-11-0103", 2, Date(2026, 11, 3), "C-00088", "ACM-4001", "Cable ties 200 mm, black (100)", 10, "7.49"),
        ("SO-26-11-0104", 1, Date(2026, 11, 3), "C-00417", "ACM-5001", "Work bench 1500 x 750 mm", 1, "389.00"),
    ]
    rows = [header]
    for order_no, line_no, date, cust, sku, desc, qty, price in lines:
        rows.append([order_no, line_no, date, cust, sku, desc, qty, Money(price), "EUR"])
    return rows


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("samples", "inbox")
    os.makedirs(out, exist_ok=True)
    write_xlsx(os.path.join(out, "pricelist-acme-2026-11.xlsx"), "Prices", pricelist())
    write_xlsx(os.path.join(out, "orders-2026-11-03.xlsx"), "Orders", orders())


if __name__ == "__main__":
    main()
