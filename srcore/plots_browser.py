"""Open a `dvc plots` page in headless Chromium with no network and check that its charts render.

`make plots-check` runs `dvc plots show`, then this module under `unshare -rn` (a network namespace with
no interfaces up, so nothing can leave the machine, whatever the page or the browser tries). The browser
is driven over the Chrome DevTools Protocol on `--remote-debugging-pipe` (NUL-terminated JSON on fds 3 and
4), which needs neither a network port nor a driver package. It records every request the page makes,
waits until every Vega chart has drawn its marks, takes a full-page screenshot and then checks pixels: a
chart passes when its marks area holds at least MIN_CURVE_PIXELS coloured (non-grey) pixels, which axes,
grid and labels alone never give. Needs Chromium (Debian: `apt-get install chromium`); CI does not run it.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MIN_CURVE_PIXELS = 200  # a plotted line 300 px wide, 2 px thick, is ~600; the legend swatch ~60
SATURATION = 60  # max - min channel above which a pixel is coloured ink, not grey/black/white
WIDTH = 1280
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")
# Stop Chromium's own background traffic (updates, sync, metrics): the page's requests are what is checked.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
                  "--disable-breakpad", "--metrics-recording-only", "--disable-features=Translate,MediaRouter",
                  "--hide-scrollbars", "--remote-debugging-pipe"]

# DVC writes each Vega plot as <div id="ID"> holding a script that calls vegaEmbed('#ID', spec); vega-embed
# replaces that script with the chart, drawn into svg.marks (or canvas.marks). CHART_IDS is filled in.
PAGE_STATE_JS = """((ids) => {
  const box = (el) => { const r = el.getBoundingClientRect();
    return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; };
  const charts = ids.map((id) => { const div = document.getElementById(id);
    const marks = div && div.querySelector("svg.marks, canvas.marks");
    return {id, rendered: !!marks, ...(marks || div ? box(marks || div) : {x: 0, y: 0, width: 0, height: 0})}; });
  const images = [...document.images].map((i) => ({src: i.getAttribute("src"),
    loaded: i.complete && i.naturalWidth > 0, ...box(i)}));
  return {charts, images, vegaEmbed: typeof window.vegaEmbed};
})(CHART_IDS)"""
CHART_CALL = re.compile(r"""vegaEmbed\(\s*['"]#([^'"]+)['"]""")


class DevTools:
    """A Chromium process and its DevTools Protocol connection over --remote-debugging-pipe."""

    def __init__(self, command: list[str], timeout: float):
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        # The browser reads commands on fd 3 and writes replies on fd 4; the shell puts the pipes there.
        wrapper = ["sh", "-c", f'exec "$@" 3<&{to_browser} 4>&{from_browser}', "sh", *command]
        self.process = subprocess.Popen(wrapper, pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL,
                                        stdout=self._stderr, stderr=self._stderr)
        os.close(to_browser)
        os.close(from_browser)
        self.deadline = time.monotonic() + timeout
        self.events: list[dict] = []
        self._buffer, self._next_id = b"", 0

    def _read_message(self) -> dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer in time; its output:\n{self.output()}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe; its output:\n{self.output()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile go to `self.events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}({params}) failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._read_message())
        return next(event for event in self.events if event.get("method") == method)

    def output(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-3000:]

    def close(self) -> None:
        """Ask the browser to quit (it closes the pipe instead of replying), kill it if it does not."""
        try:
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except BrokenPipeError:
            pass  # the browser has already exited: nothing to ask
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._stderr.close()


def chart_ids(html: str) -> list[str]:
    """Ids of the <div>s that DVC's page fills with Vega charts, in page order."""
    return CHART_CALL.findall(html)


def render(page: Path, browser: list[str], timeout: float) -> tuple[dict, bytes, list[dict]]:
    """Open `page`, wait until every chart has drawn; (page state, full-page PNG, DevTools events)."""
    expression = PAGE_STATE_JS.replace("CHART_IDS", json.dumps(chart_ids(page.read_text(encoding="utf-8"))))
    with tempfile.TemporaryDirectory(prefix="plots-browser-") as profile:
        command = [*browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        return _render(page, expression, DevTools(command, timeout))


def _render(page: Path, expression: str, devtools: DevTools) -> tuple[dict, bytes, list[dict]]:
    try:
        target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = devtools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Page"):
            devtools.call(f"{domain}.enable", session=session)
        viewport = {"width": WIDTH, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
        devtools.call("Emulation.setDeviceMetricsOverride", viewport, session)
        devtools.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        devtools.wait_event("Page.loadEventFired")
        wait_rendered(devtools, session, expression)
        height = devtools.call("Page.getLayoutMetrics", session=session)["cssContentSize"]["height"]
        devtools.call("Emulation.setDeviceMetricsOverride", {**viewport, "height": int(height)}, session)
        state = wait_rendered(devtools, session, expression)  # boxes again, after the viewport change
        shot = devtools.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        return state, base64.b64decode(shot["data"]), devtools.events
    finally:
        devtools.close()


def wait_rendered(devtools: DevTools, session: str, expression: str) -> dict:
    """The page state once every chart has its marks (or 5 s before the deadline), after a short settle."""
    def state() -> dict:
        return devtools.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                             session)["result"]["value"]

    while not all(chart["rendered"] for chart in state()["charts"]) and time.monotonic() < devtools.deadline - 5:
        time.sleep(0.2)
    time.sleep(0.5)  # vega's first paint runs after its dataflow; let it finish
    return state()


def coloured_pixels(image: Image.Image, box: dict) -> int:
    """Pixels of `box` (CSS px == image px at scale 1) whose channels differ by more than SATURATION."""
    left, top = int(box["x"]), int(box["y"])
    crop = image.convert("RGB").crop((left, top, left + int(box["width"]), top + int(box["height"])))
    rgb = np.asarray(crop, dtype=np.int16)  # (H, W, 3)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > SATURATION).sum())


def problems(state: dict, image: Image.Image, events: list[dict]) -> tuple[list[str], list[str]]:
    """(per-chart/image lines, problems found): empty problems means the page rendered offline."""
    lines, found = [], []
    if not state["charts"]:
        found.append("the page has no Vega charts")
    for chart in state["charts"]:
        ink = coloured_pixels(image, chart) if chart["rendered"] else 0
        ok = chart["rendered"] and ink >= MIN_CURVE_PIXELS
        lines.append(f"{'ok  ' if ok else 'FAIL'} chart {chart['id']}: {int(chart['width'])}x{int(chart['height'])}"
                     f" px, {ink} coloured pixels")
        if not ok:
            why = f"{ink} coloured pixels < {MIN_CURVE_PIXELS}" if chart["rendered"] else "no marks drawn"
            found.append(f"chart {chart['id']} is blank: {why}")
    for img in state["images"]:
        lines.append(f"{'ok  ' if img['loaded'] else 'FAIL'} image {img['src']}")
        if not img["loaded"]:
            found.append(f"image {img['src']} did not load")
    for event in events:
        if event.get("method") == "Network.requestWillBeSent":
            url = event["params"]["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES):
                found.append(f"the page requested {url}")
        elif event.get("method") == "Runtime.exceptionThrown":
            found.append(f"JavaScript error: {event['params']['exceptionDetails'].get('text')} "
                         f"{event['params']['exceptionDetails'].get('exception', {}).get('description', '')}")
    return lines, found


def browser_command(chromium: str | None, offline: bool) -> list[str]:
    binary = chromium or next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                              None)
    if not binary:
        raise SystemExit("no Chromium found (--chromium PATH, or `apt-get install chromium` on Debian)")
    # unshare -rn: a new user and network namespace; only a loopback interface, and it is down.
    return (["unshare", "-rn", binary] if offline else [binary])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srcore.plots_browser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path, help="the page `dvc plots show` wrote (dvc_plots/index.html)")
    parser.add_argument("--screenshot", type=Path, required=True, help="full-page PNG to write")
    parser.add_argument("--chromium", help="browser binary (default: chromium on PATH)")
    parser.add_argument("--online", action="store_true", help="keep the network (default: none, via unshare)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole check")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        raise SystemExit(f"{args.page}: no such page (run `dvc plots show` first)")
    state, png, events = render(args.page, browser_command(args.chromium, not args.online), args.timeout)
    args.screenshot.write_bytes(png)
    image = Image.open(io.BytesIO(png))
    lines, found = problems(state, image, events)
    print(f"{args.page}: {len(state['charts'])} charts, {len(state['images'])} images, network "
          f"{'on' if args.online else 'off'}, vegaEmbed {state['vegaEmbed']}; screenshot {args.screenshot} "
          f"{image.width}x{image.height}")
    print("\n".join(lines + [f"problem: {p}" for p in found] + ["OK" if not found else f"{len(found)} problems"]))
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
