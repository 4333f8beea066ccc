"""The HTML report in Debian's headless Chromium: it renders, holds the table, plots show.

Chromium comes from ``scripts/install-chromium`` (``make deploy-tools``). The page is
loaded from a file with a small probe script added, which writes what the browser made
of it (table rows, every image's decoded size) into the DOM that ``--dump-dom`` prints;
a screenshot is taken too and must not be blank. ``SCREENSHOT_TO=docs/evaluate-report.png``
keeps the screenshot (how the one in docs/ was made).
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import orjson
import pytest
from matplotlib.image import imread

from tests.support.evaluate_data import (
    classifier_lines,
    label_lines,
    labels_for,
    probabilities,
    write,
)
from worker.cli.main import run_cli

CHROMIUM = shutil.which("chromium")
PROBE = b"""<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const rows = document.querySelectorAll("table#evaluation tbody tr").length;
  const text = id => [...document.querySelectorAll(`#${id} li`)].map(li => li.innerText);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, rows, inputs: text("inputs"), method: text("method")});
  document.body.appendChild(out);
});
</script></body>"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium missing: scripts/install-chromium"
)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--no-first-run",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _report(tmp_path: Path) -> Path:
    n = 300
    ids = [f"e{i}" for i in range(n)]
    y = labels_for(n)
    labels = write(
        tmp_path / "labels.jsonl",
        label_lines(ids, [["no", "yes"][v] for v in y]),
    )
    args = [
        "evaluate",
        "--labels",
        str(labels),
        "--resamples",
        "200",
        "--report",
        str(tmp_path / "r.html"),
    ]
    for seed, (name, signal) in enumerate({"champion-lr": 0.8, "challenger-hgb": 1.5}.items()):
        path = write(
            tmp_path / f"{name}.jsonl", classifier_lines(ids, probabilities(y, signal, seed), name)
        )
        args += ["--predictions", str(path)]
    assert run_cli(args) == 0
    return tmp_path / "r.html"


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    report = _report(tmp_path)
    probed = tmp_path / "probed.html"
    probed.write_bytes(report.read_bytes().replace(b"</body>", PROBE))
    dom = _chromium("--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    probe = orjson.loads(html.unescape(dom.stdout[start : dom.stdout.index("</pre>", start)]))
    assert probe["rows"] == 8  # two models x four metrics
    # what the figures mean, as the reader sees it: how labels met classes, how the
    # intervals were resampled, and the smallest difference the test could detect
    assert any(line.startswith("label matching (canonical form") for line in probe["inputs"])
    method = "\n".join(probe["method"])
    assert "paired: the events drawn with replacement (accuracy, log_loss, brier)" in method
    assert "stratified: the events of each class drawn within that class" in method
    assert "labels per class: no " in method and "detectable effect, challenger-hgb" in method
    assert len(probe["images"]) == 2
    assert all(done and width > 100 and height > 100 for done, width, height in probe["images"])

    shot = Path(os.environ.get("SCREENSHOT_TO") or tmp_path / "shot.png").resolve()
    taken = _chromium(f"--screenshot={shot}", "--window-size=1400,1800", report.as_uri(),
                      profile=tmp_path / "profile2")  # fmt: skip
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    pixels = np.asarray(imread(shot))
    assert pixels.shape[0] >= 1000 and float(pixels[..., :3].std()) > 0.05, "blank screenshot"
