"""The worklist app's HTML pages: the nights radiologists can read, one night, and the 401 page.

`index_page` lists the published nights (study date, task, exams, flagged), newest first.
`night_page` shows one night's worklist.json rows, most suspicious first: per exam who it is
(accession number, patient name, birth date, from the gateway Orthanc or else the PACS, or
"not found" / "lookup unavailable"), a viewer link, the score, suspicion, flag and its rule,
each view's thumbnail and heatmap with its QC notes, and the reader's verdict buttons (a
small script behind the page's CSP nonce posts them); then the studies the PACS could not
deliver. `login_page` is the 401 answer a browser gets, linking to the login page.

Identifying values exist only in the response these functions build: they come from
`pipelines.pacs.demographics` for one page view, are HTML-escaped like every value read from
a file, the database or Orthanc (`_e`), and are never written to disk or logged here.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from pipelines.config import get_settings
from pipelines.pacs.demographics import NOT_FOUND, StudyIdentity, viewer_link
from pipelines.screening import feedback
from pipelines.screening.worklist import flag_rule

_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;background:#fff}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 6px;vertical-align:top}
th{background:#eee;text-align:left}tr.flagged{background:#ffd9d9}.flag{color:#a00000;font-weight:bold}
.level{font-size:1.4em;font-weight:bold}.patient{font-weight:bold}.notfound{color:#a00000}
figure.view{display:inline-block;margin:2px;padding:3px;border:2px solid transparent;vertical-align:top}
figure.view.discounted{border:2px dashed #e07b00;background:#fff3e0}figure img{height:128px;margin-right:2px}
ul.qc{color:#8a4b00;font-size:12px;margin:0;padding-left:1.2em;max-width:22em}small{color:#555}
button.verdict{margin:1px}button.verdict[aria-pressed=true]{background:#1d4ed8;color:#fff}"""

_SCRIPT = """const table = document.getElementById("worklist");
table.addEventListener("click", async (event) => {
  const button = event.target.closest("button.verdict");
  if (!button) return;
  const row = button.closest("tr"), out = row.querySelector(".current");
  out.textContent = "saving...";
  let answer;
  try {
    answer = await fetch(table.dataset.feedback, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({exam_id: row.dataset.exam, verdict: button.value})});
  } catch (err) { out.textContent = "not saved: " + err; return; }
  if (!answer.ok) { out.textContent = "not saved (HTTP " + answer.status + ")"; return; }
  row.dataset.verdict = button.value;
  out.textContent = "your verdict: " + button.value;
  row.querySelectorAll("button.verdict").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
});"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _doc(title: str, body: str, nonce: str = "", script: str = "") -> str:
    tag = f'<script nonce="{_e(nonce)}">{script}</script>' if script else ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n{tag}</body></html>\n")


def _who(who: StudyIdentity, link: str | None) -> str:
    if who.found:
        text = (f'<div class="accession">Acc. {_e(who.accession or "none")}</div>'
                f'<div class="patient">{_e(who.patient_name)}</div>'
                f'<div class="birth">born {_e(who.birth_date or "unknown")}</div>')
        if who.source == "pacs":
            text += "<small>from the PACS (no longer in the gateway)</small><br>"
    else:
        text = '<div class="notfound">{}</div>'.format(
            "not found" if who.source == NOT_FOUND else "lookup unavailable")
    if link:
        text += (f'<a class="viewer" href="{_e(link)}" target="_blank" rel="noopener noreferrer">'
                 "open in viewer</a><br>")
    return f'<td class="who" data-source="{_e(who.source)}">{text}<small>{_e(who.exam_id)}</small></td>'


def _view(rank: int, view: str, score: float, flags: list[dict[str, Any]], date: str, img_dir: Path) -> str:
    stem = f'{rank:04d}-{re.sub(r"[^A-Za-z0-9_-]", "_", view)}'  # as worklist.py names the files
    images = "".join(f'<img src="{_e(date)}/img/{stem}{suffix}.png" alt="{_e(view)}{alt}">'
                     for suffix, alt in (("", ""), ("-heat", " heatmap"))
                     if (img_dir / f"{stem}{suffix}.png").is_file())
    notes = "".join(f'<li data-code="{_e(f["code"])}">{_e(str(f["code"]).replace("_", " "))}: '
                    f'{_e(f["reason"])}</li>' for f in flags)
    return (f'<figure class="view{" discounted" if flags else ""}" data-view="{_e(view)}">'
            f'<figcaption>{_e(view)} {score:.2f}{" discounted" if flags else ""}</figcaption>'
            f'{images or "no image"}{f"<ul class=qc>{notes}</ul>" if notes else ""}</figure>')


def _row(row: dict[str, Any], who: StudyIdentity, link: str | None, verdict: str | None, date: str,
         img_dir: Path) -> str:
    flagged, rank = bool(row.get("flagged")), int(row["rank"])
    flag = (f'<span class="flag">FLAGGED</span><br><small>{_e(row.get("flag_reason", ""))}</small>'
            if flagged else "")
    views = "".join(_view(rank, v, float(score), row.get("qc", {}).get(v) or [], date, img_dir)
                    for v, score in row.get("view_scores", {}).items())
    buttons = "".join(f'<button type="button" class="verdict" value="{v}" '
                      f'aria-pressed="{str(v == verdict).lower()}">{v}</button>' for v in feedback.VERDICTS)
    current = f"your verdict: {_e(verdict)}" if verdict else "no verdict yet"
    return (f'<tr class="{"flagged" if flagged else "unflagged"}" data-exam="{_e(row["exam_id"])}" '
            f'data-verdict="{_e(verdict or "")}"><td class="rank">{rank}</td>{_who(who, link)}'
            f'<td class="suspicion"><span class="level">{int(row["suspicion"])}</span></td>'
            f'<td class="score">{float(row["score"]):.3f}</td><td class="flagcell">{flag}</td>'
            f'<td class="views">{views}</td>'
            f'<td class="feedback">{buttons}<div class="current">{current}</div></td></tr>')


def _not_retrieved(missing: list[dict[str, Any]], who: dict[str, StudyIdentity]) -> str:
    if not missing:
        return ""
    items = "".join(f'<tr data-exam="{_e(m["exam_id"])}">{_who(who[m["exam_id"]], None)}'
                    f'<td>{_e(m.get("reason", ""))}</td></tr>' for m in missing)
    return (f"<h2>{len(missing)} studies could not be retrieved from the PACS (not screened)</h2>"
            '<table id="not-retrieved"><thead><tr><th>exam</th><th>reason</th></tr></thead>'
            f"<tbody>{items}</tbody></table>")


def night_page(data: dict[str, Any], who: dict[str, StudyIdentity], verdicts: dict[str, str], login: str,
               nonce: str, img_dir: Path) -> str:
    """The night's page: worklist.json's rows with who each exam is and the reader's verdicts."""
    s, date, rows = get_settings(), str(data["study_date"]), data.get("rows", [])
    links = {e: viewer_link(s.viewer_url, s.orthanc_base_url, w) for e, w in who.items()}
    body = "".join(_row(r, who[r["exam_id"]], links[r["exam_id"]], verdicts.get(r["exam_id"]), date, img_dir)
                   for r in rows)
    flagged = sum(bool(r.get("flagged")) for r in rows)
    return _doc(f"radflow worklist {data['task']} {date}", f"""\
<p><a href="../">all nights</a> · logged in as {_e(login)}</p>
<h1>Screening worklist: {_e(data['task'])}, study date {_e(date)}</h1>
<p class="summary">{len(rows)} exams, {flagged} flagged by {_e(flag_rule(data.get("capacity")))};
model version {_e(data.get("model_version", ""))}. Sorted by suspicion (1-10), highest first. Patient
details are looked up in the PACS as this page opens and are not stored.</p>
<table id="worklist" data-feedback="{_e(date)}/feedback"><thead><tr><th>#</th><th>patient</th>
<th>suspicion</th><th>score</th><th>flag</th><th>views (image, heatmap; QC notes)</th><th>your verdict</th>
</tr></thead><tbody>
{body or '<tr><td colspan="7">No exams were screened for this date.</td></tr>'}
</tbody></table>
{_not_retrieved(data.get("not_retrieved") or [], who)}""", nonce, _SCRIPT)


def index_page(listed: list[dict[str, Any]], login: str) -> str:
    """Every published night (`worklist.nights` order: newest first)."""
    rows = "".join(f'<tr><td><a href="{_e(n["task"])}/{_e(n["study_date"])}">{_e(n["study_date"])}</a></td>'
                   f'<td>{_e(n["task"])}</td><td>{_e(n.get("exams", ""))}</td>'
                   f'<td>{_e(n.get("flagged", ""))}</td></tr>' for n in listed)
    return _doc("radflow worklists", f"""<p>logged in as {_e(login)}</p><h1>Screening worklists</h1>
<table id="nights"><thead><tr><th>study date</th><th>task</th><th>exams</th><th>flagged</th></tr></thead>
<tbody>{rows}</tbody></table>""")


def login_page(link: str | None) -> str:
    """The 401 page: "not logged in", with a link to the login page when there is one."""
    login = f'<p><a id="login" href="{_e(link)}">Log in</a> to see the worklist.</p>' if link else ""
    return _doc("radflow: log in first", f"<h1>401: not logged in</h1>{login}")
