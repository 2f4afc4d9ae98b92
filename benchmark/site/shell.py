"""The HTML every page shares: its shell (CSP, inline CSS, the table-sorting script) and
escaping. Nothing is fetched from a CDN: a page works from ``file://`` with no network."""

from __future__ import annotations

import html

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0 auto;max-width:1400px;padding:0 1.2em 3em;color:#1d2330;background:#fff}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{font-size:1.3em;margin:1.6em 0 .3em;
 border-bottom:1px solid #d8dce3;padding-bottom:.2em}h3{font-size:1.1em;margin:1.2em 0 .3em}
a{color:#1f5fbf}p.note,.note{color:#566074;font-size:.92em}
nav{margin:.4em 0 1em}nav a{margin-right:1em}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0 1em}
th,td{padding:.25em .45em;border-bottom:1px solid #e3e6eb;text-align:right;white-space:nowrap}
th{background:#f3f5f8;position:sticky;top:0;white-space:normal;vertical-align:bottom}
td.l,th.l{text-align:left}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:hover{background:#e4e9f1}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:.75em}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:.75em}
tbody tr:hover{background:#f7f9fc}
.up{color:#0a7a32;font-weight:600}.down{color:#b3261e;font-weight:600}
.ci{color:#7a8294;font-size:.85em}td .ci{display:block;line-height:1.1}
td .up,td .down{margin-left:.15em;font-size:.85em}
.badge{display:inline-block;padding:0 .4em;border-radius:.6em;font-size:.8em;
 background:#e8f1ff;color:#1f4f99;margin-left:.3em}
figure{margin:.6em 0 1.4em}figure svg{max-width:100%;height:auto;display:block}
details summary{cursor:pointer}details pre{margin:.3em 0;white-space:pre-wrap}
td.wrap{white-space:normal;text-align:left;max-width:18em}
figcaption{color:#566074;font-size:.9em;max-width:70em}
pre{background:#f6f8fa;border:1px solid #e3e6eb;padding:.8em;overflow:auto;font-size:.85em}
.gallery{display:flex;flex-wrap:wrap;gap:.8em;margin:.4em 0 1em}
.card{width:12.5em;border:1px solid #e3e6eb;border-radius:4px;padding:.4em;font-size:.82em}
.card.pair{width:26em;display:flex;gap:.5em}.card.pair>div{flex:1}
.card img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;
 background:#eee;display:block;margin-bottom:.3em}
.card img.photo{image-rendering:auto;width:128px}
.tag{color:#8a5a00;font-weight:600}
"""

# Click (or Enter on) a header to sort by its column; again to reverse. A cell sorts by its
# data-sort value (the mean for a score), else its text; empty values stay last.
SORT_JS = """
(function(){
function key(td){var v=td.getAttribute('data-sort');if(v===null)v=td.textContent.trim();
 if(v==='')return null;var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
function sort(table,col,th){
 var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
 var numeric=rows.some(function(r){return typeof key(r.cells[col])==='number';});
 var cur=th.getAttribute('aria-sort');
 var dir=cur?(cur==='ascending'?-1:1):(numeric&&!th.hasAttribute('data-asc')?-1:1);
 Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort');});
 th.setAttribute('aria-sort',dir===1?'ascending':'descending');
 rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
  if(x===null||y===null)return x===null?(y===null?0:1):-1;
  return x<y?-dir:x>y?dir:0;});
 rows.forEach(function(r){body.appendChild(r);});}
Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(t){
 Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
  th.tabIndex=0;th.title=(th.title?th.title+' \\u2014 ':'')+'click to sort';
  th.addEventListener('click',function(){sort(t,i,th);});
  th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){
   e.preventDefault();sort(t,i,th);}});});});
})();
"""

CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def page(title: str, body: str, depth: int = 0) -> str:
    home = "../" * depth + "index.html"
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<nav><a href="{home}">smallcomp leaderboard</a></nav>{body}'
        f"<script>{SORT_JS}</script></body></html>\n"
    )
