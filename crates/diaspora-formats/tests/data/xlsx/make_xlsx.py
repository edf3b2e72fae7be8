#!/usr/bin/env python3
"""Writes survey.xlsx, a minimal but valid Office Open XML workbook, with the standard library only.

Sheet "Responses": a header row, three good rows (Cyrillic text, integers, a decimal, a date-formatted number),
one row with an error cell (#N/A) and one empty row. Run: python3 make_xlsx.py (writes beside this script).
"""
import os
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))

CT = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
</Types>"""
RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
WB = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Responses" sheetId="1" r:id="rId1"/></sheets>
</workbook>"""
WB_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
</Relationships>"""
# Style 1 = a date-time number format (id 22, m/d/yy h:mm).
STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<fonts count="1"><font/></fonts><fills count="1"><fill/></fills><borders count="1"><border/></borders>
<cellStyleXfs count="1"><xf/></cellStyleXfs>
<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="22" applyNumberFormat="1"/></cellXfs>
</styleSheet>"""


def s(ref, text):
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def n(ref, value, style=None):
    st = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{st}><v>{value}</v></c>'


rows = [
    [s("A1", "ResponseId"), s("B1", "Country"), s("C1", "Age"), s("D1", "Weight"), s("E1", "Submitted")],
    [s("A2", "R_1"), s("B2", "Грузия"), n("C2", 34), n("D2", 1.25), n("E2", 45050.520833333336, 1)],
    [s("A3", "R_2"), s("B3", "KZ"), n("C3", 51), n("D3", 0.8), n("E3", 45051.25, 1)],
    [s("A4", "R_3"), s("B4", "США"), '<c r="C4" t="e"><v>#N/A</v></c>', n("D4", 1), n("E4", 45052, 1)],
    [],
    [s("A6", "R_4"), s("B6", "Türkiye"), n("C6", 29), n("D6", 2), n("E6", 45053.5, 1)],
]
body = "".join(f'<row r="{i + 1}">{"".join(r)}</row>' for i, r in enumerate(rows) if r)
SHEET = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{body}</sheetData></worksheet>"""

with zipfile.ZipFile(os.path.join(HERE, "survey.xlsx"), "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in [
        ("[Content_Types].xml", CT),
        ("_rels/.rels", RELS),
        ("xl/workbook.xml", WB),
        ("xl/_rels/workbook.xml.rels", WB_RELS),
        ("xl/styles.xml", STYLES),
        ("xl/worksheets/sheet1.xml", SHEET),
    ]:
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
