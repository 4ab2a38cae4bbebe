"""report.html in a real headless browser: it renders, its plots load and show, the console stays quiet,
and a `<script>` planted in a method label and in the command shows as text without running.

Skips only where no chromium is installed; CI (.ci/run) installs Debian's chromium first.
"""

import json
import re
import shutil
import subprocess

import pytest

from test_report import PLANT, sample_records, write_run
from vfbench.report.build import write_report

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="chromium is not installed (apt-get install chromium); CI installs it in .ci/run"
)
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
]
# The probe runs after every image has loaded (the load event) and writes what it saw into the DOM.
PROBE = """<script>
window.addEventListener('load', () => {
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({title: document.title, images: [...document.images].map(
    i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}))});
  document.body.appendChild(pre);
});
</script>"""


def browse(page, tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    p = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return p.stdout, console


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    run = write_run(tmp_path_factory.mktemp("browser") / "run", sample_records(acc=True))
    return write_report(run)


def test_renders_escaped_with_quiet_console(page, tmp_path):
    dom, console = browse(page, tmp_path, "--dump-dom")
    assert console == []  # no console output at all: no errors, no CSP violations, nothing uncaught
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title.startswith("vfbench report: run") and "pwned" not in title
    assert "<script" not in dom.lower()  # no script element exists: the planted ones are text
    planted = PLANT.replace("<", "&lt;").replace(">", "&gt;")  # how a DOM dump writes text holding markup
    assert planted in dom  # in the tables (method label) ...
    assert f"vfbench run --methods '{planted}' --frames 4..16" in dom  # ... and in the command


def test_plots_load_and_show_without_csp(page, tmp_path):
    # A copy without the Content-Security-Policy, plus a probe: escaping alone must keep the planted script
    # inert, and every embedded plot must decode to a real image that takes up room on the page.
    html = page.read_text()
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("</body>", PROBE + "</body>")
    probed = page.with_name("probed.html")
    probed.write_text(html)
    dom, console = browse(probed, tmp_path, "--dump-dom")
    assert console == []
    seen = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert "pwned" not in seen["title"]
    images = seen["images"]
    assert len(images) == 5  # memory, budget, throughput, accuracy, breakdown
    for img in images:
        assert img["complete"] and img["width"] > 300 and img["height"] > 200 and img["shown"] > 300, img


def test_screenshot_shows_the_plots(page, tmp_path):
    from PIL import Image, ImageChops

    # The same page twice, once with its images hidden: the pixels that differ are the painted plots.
    hidden = page.with_name("hidden.html")
    hidden.write_text(page.read_text().replace("</style>", "img { visibility: hidden; }</style>", 1))
    shots = []
    for name, source in (("report.png", page), ("hidden.png", hidden)):
        shot = tmp_path / name
        _, console = browse(source, tmp_path, f"--screenshot={shot}", "--window-size=1280,2200")
        assert console == [] and shot.exists()
        shots.append(Image.open(shot).convert("RGB"))
    assert shots[0].size == (1280, 2200)
    changed = ImageChops.difference(*shots).convert("L").point(lambda v: 255 if v > 40 else 0).histogram()[255]
    assert changed > 5_000, changed  # layout is identical (visibility), so only painted plots differ
