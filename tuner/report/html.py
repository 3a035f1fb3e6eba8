"""The page's shell: stylesheet, the one small script, and the markup helpers the sections share.

Everything the page needs is in it: no font, image, script or style is fetched. Without JavaScript
the page is complete (the charts are SVG, the trials table is sorted fastest first); the script only
makes the trials table sortable by any column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from tuner.report.charts import Figure

# Okabe–Ito: distinguishable with the common colour-vision deficiencies; lighter variants on dark.
_LIGHT = (
    "--bg:#ffffff;--fg:#1a1a1a;--muted:#555b61;--line:#9aa0a6;--grid:#e4e6e8;--panel:#f4f5f7;"
    "--warn-bg:#fff4e0;--warn:#8a4b00;--ok:#1b6e35;--bad:#a3261b;"
    "--c0:#0072b2;--c1:#c27c00;--c2:#009e73;--c3:#cc79a7;--c4:#3a9bd9;--c5:#d55e00;--c6:#7b6a00;--c7:#80868b"
)
_DARK = (
    "--bg:#15171a;--fg:#e9eaec;--muted:#aab0b6;--line:#6b7177;--grid:#2c3035;--panel:#1f2226;"
    "--warn-bg:#3a2a10;--warn:#ffcf87;--ok:#7fd69a;--bad:#ff9d8f;"
    "--c0:#5ab4ea;--c1:#f0b440;--c2:#3fcfa5;--c3:#eaa0cd;--c4:#a3d6f5;--c5:#ff8f52;--c6:#e3d164;--c7:#9aa0a6"
)

CSS = (
    """
:root{color-scheme:light dark;LIGHT}
@media (prefers-color-scheme:dark){:root{DARK}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:70rem;padding:1.5rem 1.25rem 3rem;background:var(--bg);color:var(--fg);
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
h1{font-size:1.7rem;margin:.2rem 0}h2{font-size:1.35rem;margin:2.2rem 0 .6rem;border-bottom:1px solid var(--grid);
padding-bottom:.2rem}h3{font-size:1.1rem;margin:1.2rem 0 .4rem}
p,li{max-width:52rem}.muted{color:var(--muted)}.small{font-size:.9rem}
a{color:var(--c0)}code,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.92em}
pre{background:var(--panel);padding:.7rem .9rem;border-radius:6px;white-space:pre-wrap;word-break:break-word}
.lead{font-size:1.15rem;background:var(--panel);border-left:4px solid var(--c0);padding:.8rem 1rem;border-radius:4px}
.warn{background:var(--warn-bg);color:var(--warn);padding:.5rem .8rem;border-radius:4px}
.tag{font-weight:600}.yes{color:var(--bad)}.better{color:var(--ok)}.no{color:var(--muted)}
nav ol{columns:2;padding-left:1.3rem;margin:.4rem 0}
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums;font-size:.95rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid var(--grid);text-align:left;vertical-align:top}
th{font-weight:600;border-bottom:2px solid var(--line)}td.n,th.n{text-align:right;white-space:nowrap}
tr.rec td{font-weight:600;background:var(--panel)}
table.trials{font-size:.84rem}table.trials td:last-child{min-width:8.5rem}
table.trials td,table.trials th{padding:.25rem .35rem}table.trials td:first-child{white-space:nowrap}
table.trials th{white-space:normal;vertical-align:bottom}
.wide{overflow-x:auto}.sides{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:0 2rem}

table.sortable th button{font:inherit;color:inherit;background:none;border:0;padding:0;cursor:pointer;text-align:inherit}
th[aria-sort=ascending] button::after{content:" ▲"}th[aria-sort=descending] button::after{content:" ▼"}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.4rem 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
figure{margin:1.2rem 0 1.6rem;break-inside:avoid;page-break-inside:avoid}
figcaption{font-size:.92rem;color:var(--muted);max-width:48rem}
figcaption strong{color:var(--fg)}
svg.chart{width:100%;max-width:45rem;height:auto;display:block}
svg.chart text{fill:var(--fg);font:13px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
svg.chart .ticks text{fill:var(--muted)}svg.chart .axis-label{font-size:14px;font-weight:600}
svg.chart .row-label{font-size:12.5px}svg.chart .row.marked .row-label{font-weight:700}
.grid path{stroke:var(--grid);fill:none}.axis-line{stroke:var(--line);fill:none;stroke-width:1.2}
.c0{--c:var(--c0)}.c1{--c:var(--c1)}.c2{--c:var(--c2)}.c3{--c:var(--c3)}.c4{--c:var(--c4)}.c5{--c:var(--c5)}
.c6{--c:var(--c6)}.c7{--c:var(--c7)}
.ln{fill:none;stroke:var(--c);stroke-width:2}.ln.dash{stroke-dasharray:6 4}
.mk{fill:var(--c);stroke:var(--c);stroke-width:1.6}.mk.hollow{fill:var(--bg)}
.err{fill:none;stroke:var(--c);stroke-width:1.2;opacity:.85}.span{stroke:var(--grid);stroke-width:3}
.ref path{stroke:var(--fg);stroke-width:1.4;stroke-dasharray:5 4;fill:none}.ref.knee path{stroke:var(--c1);stroke-width:2}
svg .ref text,svg .callout text{paint-order:stroke;stroke:var(--bg);stroke-width:4px;stroke-linejoin:round;font-weight:600}
.callout .star{fill:none;stroke:var(--fg);stroke-width:1.8}
ul.legend{list-style:none;padding:0;margin:.3rem 0;display:flex;flex-wrap:wrap;gap:.2rem 1.1rem;font-size:.92rem}
ul.legend li{display:flex;align-items:center;gap:.35rem}svg.swatch{flex:none}
footer{margin-top:3rem;font-size:.85rem;color:var(--muted)}
@page{size:A4;margin:14mm 12mm}
@media print{:root{LIGHT}body{max-width:none;padding:0;font-size:10.5pt}nav,.no-print{display:none}
h2{break-after:avoid;page-break-after:avoid}tr{break-inside:avoid}table{font-size:8.5pt}
table.trials,table.faults,table.pairs{font-size:7.5pt}th,td{padding:.15rem .3rem}td.n,th.n{white-space:normal}
table.trials td:last-child{min-width:0}table.trials td,table.trials th{padding:.1rem .2rem}table.changes td,table.hosts td{white-space:normal;font-size:8pt}
svg.chart{max-width:100%}.wide{overflow:visible}a{color:inherit;text-decoration:none}}
""".replace("LIGHT", _LIGHT)
    .replace("DARK", _DARK)
    .strip()
)

# Sort the trials table by a column when its header is clicked (numbers by data-v).
JS = """
document.querySelectorAll("table.sortable").forEach(function(t){
var heads=t.tHead.rows[0].cells;
function key(c,num){var v=c.getAttribute("data-v");if(!num)return(v===null?c.textContent:v).trim().toLowerCase();
var n=parseFloat(v);return isNaN(n)?-Infinity:n}
Array.prototype.forEach.call(heads,function(th,i){var b=document.createElement("button");b.type="button";
b.textContent=th.textContent;th.textContent="";th.appendChild(b);
b.addEventListener("click",function(){var asc=th.getAttribute("aria-sort")!=="ascending",num=th.classList.contains("n");
Array.prototype.forEach.call(heads,function(h){h.removeAttribute("aria-sort")});
th.setAttribute("aria-sort",asc?"ascending":"descending");var body=t.tBodies[0];
Array.prototype.slice.call(body.rows).sort(function(x,y){var a=key(x.cells[i],num),c=key(y.cells[i],num);
return(a<c?-1:a>c?1:0)*(asc?1:-1)}).forEach(function(r){body.appendChild(r)})})})});
""".strip()


def e(text: object) -> str:
    """Escaped text."""
    return escape(str(text), quote=True)


def page(title: str, body: Iterable[str], *, generator: str) -> str:
    """The whole document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="generator" content="{e(generator)}"><title>{e(title)}</title>'
        f"<style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{JS}</script>\n</body></html>\n"
    )


def section(sid: str, title: str, *parts: str) -> str:
    """A numbered section of the report."""
    return f'<section id="{e(sid)}"><h2>{e(title)}</h2>' + "".join(p for p in parts if p) + "</section>"


def toc(entries: Sequence[tuple[str, str]]) -> str:
    """The table of contents."""
    items = "".join(f'<li><a href="#{e(sid)}">{e(title)}</a></li>' for sid, title in entries)
    return f'<nav aria-label="contents"><ol>{items}</ol></nav>'


def facts(rows: Sequence[tuple[str, str]], cls: str = "facts") -> str:
    """A definition list of (what, value) pairs."""
    if not rows:
        return ""
    body = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows)
    return f'<dl class="{cls}">{body}</dl>'


def para(text: str, cls: str = "") -> str:
    """A paragraph of escaped text."""
    return f'<p class="{cls}">{e(text)}</p>' if cls else f"<p>{e(text)}</p>"


def bullets(lines: Sequence[str]) -> str:
    """An unordered list of escaped lines."""
    return "<ul>" + "".join(f"<li>{e(x)}</li>" for x in lines) + "</ul>" if lines else ""


def figure(fig: Figure | None, missing: str) -> str:
    """A chart with its legend and caption, or one line saying why there is none."""
    if fig is None:
        return para(missing, "muted")
    legend = "".join(f"<li>{sw}<span>{e(name)}</span></li>" for sw, name in fig.legend)
    legend_html = f'<ul class="legend">{legend}</ul>' if legend else ""
    return (
        f'<figure id="{e(fig.id)}" data-chart="{e(fig.id)}">{fig.svg}{legend_html}'
        f"<figcaption><strong>{e(fig.title)}.</strong> {e(fig.caption)}</figcaption></figure>"
    )


Cell = tuple[str, object] | str  # text, or (text, sort value) for a numeric column


def table(
    heads: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    numeric: Sequence[int] = (),
    cls: str = "",
    row_attrs: Sequence[str] | None = None,
    sorted_by: int | None = None,
) -> str:
    """A table; columns in ``numeric`` are right-aligned and sort by the cell's value."""
    ths = []
    for i, h in enumerate(heads):
        n = ' class="n"' if i in numeric else ""
        sort = ' aria-sort="descending"' if i == sorted_by else ""
        ths.append(f'<th scope="col"{n}{sort}>{e(h)}</th>')
    body = []
    for r, row in enumerate(rows):
        tds = []
        for i, cell in enumerate(row):
            text, value = (cell, None) if isinstance(cell, str) else cell
            attrs = (' class="n"' if i in numeric else "") + (
                f' data-v="{e(value)}"' if value is not None else ""
            )
            tds.append(f"<td{attrs}>{e(text)}</td>")
        extra = f" {row_attrs[r]}" if row_attrs and row_attrs[r] else ""
        body.append(f"<tr{extra}>{''.join(tds)}</tr>")
    c = f' class="{cls}"' if cls else ""
    return f'<div class="wide"><table{c}><thead><tr>{"".join(ths)}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
