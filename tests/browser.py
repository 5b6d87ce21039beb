"""Headless Chromium for the HTML-report tests: load a file:// page, report what loaded, screenshot.

A copy of the page gets a small script that waits for every <img> and <video> to load or fail
and writes their natural sizes into the DOM, which `--dump-dom` then prints; no CDP needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required"]

PROBE = """<script>
function cnReport(){
  const imgs=[...document.images].map(i=>({src:i.getAttribute('src'),w:i.naturalWidth,h:i.naturalHeight,ok:i.complete&&i.naturalWidth>0}));
  const vids=[...document.querySelectorAll('video')].map(v=>({src:v.getAttribute('src'),w:v.videoWidth,h:v.videoHeight,ok:v.readyState>=2&&!v.error,err:v.error?v.error.code:null}));
  const pre=document.createElement('pre');pre.id='cn-result';pre.textContent=JSON.stringify({imgs,vids});document.body.appendChild(pre);
}
window.addEventListener('load',()=>{
  const vids=[...document.querySelectorAll('video')];
  Promise.all(vids.map(v=>v.readyState>=2||v.error?0:new Promise(r=>{v.addEventListener('loadeddata',r);v.addEventListener('error',r);setTimeout(r,8000);})))
    .then(cnReport);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def loaded_media(page: Path) -> dict:
    """{"imgs": [...], "vids": [...]} with natural sizes and ok flags, as Chromium saw them."""
    probe = page.with_name("_cn_probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        r = _run(["--virtual-time-budget=15000", "--dump-dom", probe.resolve().as_uri()])
    finally:
        probe.unlink()
    m = re.search(r'<pre id="cn-result">(.*?)</pre>', r.stdout, re.S)
    if not m:
        raise AssertionError(f"no result from chromium: {r.stderr[-2000:]}")
    import html

    return json.loads(html.unescape(m.group(1)))


def screenshot(page: Path, out: Path, size: str = "1400,2400") -> Path:
    _run([f"--window-size={size}", "--virtual-time-budget=5000", f"--screenshot={out.resolve()}", page.resolve().as_uri()])
    return out
