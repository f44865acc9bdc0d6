"""Screenshot TensorBoard's dashboards in headless Chromium, for a developer to look at.

How to run it, from the repository root with the virtualenv active::

    python scripts/tb_screenshots.py LOGDIR --out DIR [--port 0] [--width 1600 --height 1000]
        [--timeout 60] [--url NAME=PATH ...]

e.g. ``--url summary_text='/#text&runSelectionState=...'`` (see ``run_selection_hash``) adds a
screenshot of any TensorBoard URL. Then open the PNGs in DIR and read DIR/console.txt.

What it needs (developer tools, not dependencies of the project): Chromium from Debian
(``apt-get install -y chromium``) and Playwright in the virtualenv (``pip install playwright``).
Do NOT run ``playwright install``: the script drives the system Chromium. TensorBoard comes with
the project. This is a manual developer check; it is not part of CI and no test calls it.

It starts ``tensorboard --logdir LOGDIR --host 127.0.0.1 --port P``, waits (bounded) until it
answers, then opens each view in a fresh browser context: the landing page, Time Series, Scalars,
HParams (table, then parallel coordinates by clicking its tab), Text, Images and any ``--url``.
Each view waits (bounded by ``--timeout``) for a quiet network and no visible spinner, then saves
``DIR/NN_name.png``. Console errors go to DIR/console.txt, TensorBoard's output to
DIR/tensorboard.log. The browser may only fetch from 127.0.0.1; other requests are aborted.
TensorBoard and the browser are always stopped at the end, also on Ctrl-C and SIGTERM.

Exit status: 0 every view saved, 1 some view failed, 2 setup error (no Chromium or Playwright,
TensorBoard did not start), 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
# Loading indicators of the Angular (mat-*) and Polymer (paper-*) parts of TensorBoard's UI.
SPINNERS = "mat-spinner, mat-progress-spinner, paper-spinner[active], paper-spinner-lite[active]"
# (name, path, text of a tab to click after loading, or None)
VIEWS = [
    ("landing", "/", None),
    ("timeseries", "/#timeseries", None),
    ("scalars", "/#scalars", None),
    ("hparams_table", "/#hparams", None),
    ("hparams_parallel_coords", "/#hparams", "Parallel Coordinates View"),
    ("text", "/#text", None),
    ("images", "/#images", None),
]


class SetupError(RuntimeError):
    """No browser or Playwright, or TensorBoard did not start."""


def run_selection_hash(runs: list[str]) -> str:
    """Return ``&runSelectionState=...``, ticking exactly ``runs`` on a legacy dashboard.

    TensorBoard (checked with 2.21) reads base64 of the JSON ``{run: true, ...}`` after the
    dashboard id, e.g. ``"/#text" + run_selection_hash(["summary"])``.
    """
    raw = json.dumps({run: True for run in runs}, separators=(",", ":")).encode()
    return "&runSelectionState=" + urllib.parse.quote(base64.b64encode(raw).decode(), safe="")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_tensorboard(logdir: Path, port: int, log_path: Path) -> subprocess.Popen:
    """Start TensorBoard in its own process group (Ctrl-C reaches only this script)."""
    beside = Path(sys.executable).parent / "tensorboard"
    exe = str(beside) if beside.exists() else shutil.which("tensorboard")
    if not exe:
        raise SetupError("no tensorboard command found")
    cmd = [exe, "--logdir", str(logdir), "--host", HOST, "--port", str(port)]
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_tensorboard(proc: subprocess.Popen, base: str, timeout: float) -> list[str]:
    """Wait until TensorBoard answers and lists the same runs twice; return them."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1
    deadline = time.monotonic() + timeout
    runs = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"tensorboard exited with status {proc.returncode}")
        try:
            with opener.open(base + "/data/runs", timeout=5) as resp:
                now = json.loads(resp.read())
            if now and now == runs:
                return now
            runs = now
        except (OSError, ValueError):
            pass
        time.sleep(1.0)
    if runs is None:
        raise SetupError(f"tensorboard did not answer on {base} within {timeout:.0f} s")
    return runs  # answered, but no runs yet: the screenshots will show that


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def is_local(url: str) -> bool:
    """Whether the browser may fetch ``url``: 127.0.0.1 and in-page data/blob URLs only."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == HOST


def wait_rendered(page: Any, inflight: set, deadline: float) -> bool:
    """Wait until no request has been in flight for 1 s and no spinner shows; False on timeout."""
    spinners = page.locator(SPINNERS).filter(visible=True)  # CSS pierces open shadow roots
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)  # also lets Playwright dispatch the request events
        if inflight or spinners.count():
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            page.wait_for_timeout(1000)  # charts draw in animation frames after their data
            return True
    return False


def capture(browser: Any, base: str, view: tuple, path: Path, args: argparse.Namespace) -> dict:
    """Open one view in a fresh context, wait for it, save a screenshot; return what happened."""
    name, url_path, click = view
    result = {
        "name": name,
        "url": base + url_path,
        "errors": [],
        "blocked": [],
        "ok": False,
        "note": "",
    }
    context = browser.new_context(viewport={"width": args.width, "height": args.height})
    try:
        context.route(lambda url: not is_local(url), lambda route: block(route, result))
        page = context.new_page()
        inflight: set = set()
        page.on("request", lambda req: inflight.add(req))
        page.on("requestfinished", lambda req: inflight.discard(req))
        page.on("requestfailed", lambda req: inflight.discard(req))
        page.on("console", lambda m: m.type == "error" and result["errors"].append(m.text))
        page.on("pageerror", lambda err: result["errors"].append(f"uncaught: {err}"))
        deadline = time.monotonic() + args.timeout
        page.goto(result["url"], wait_until="load", timeout=args.timeout * 1000)
        waited = wait_rendered(page, inflight, deadline)
        if click:
            page.get_by_text(click).first.click(
                timeout=max(1.0, deadline - time.monotonic()) * 1000
            )
            waited = wait_rendered(page, inflight, deadline)
        page.screenshot(path=str(path), full_page=True)
        result["ok"] = True
        result["note"] = "" if waited else "render wait timed out"
    except Exception as err:  # one broken view must not cost the others
        result["note"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    finally:
        with suppress(Exception):
            context.close()
    return result


def block(route: Any, result: dict) -> None:
    """Abort a request that would leave 127.0.0.1."""
    result["blocked"].append(route.request.url)
    route.abort("blockedbyclient")


def write_console(path: Path, results: list[dict]) -> None:
    """Write every view's console errors and blocked requests to ``path``."""
    lines = []
    for r in results:
        lines += [f"== {r['name']}  {r['url']}", f"console errors: {len(r['errors'])}"]
        lines += ["  " + e for e in r["errors"]]
        lines += [f"  blocked (not {HOST}): {u}" for u in r["blocked"]]
        lines += [f"  note: {r['note']}"] if r.get("note") else []
        lines.append("")
    path.write_text("\n".join(lines))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description="Screenshot TensorBoard dashboards (manual check).")
    p.add_argument("logdir", type=Path, help="log directory for tensorboard --logdir")
    p.add_argument("--out", type=Path, required=True, help="folder for PNGs and console.txt")
    p.add_argument("--port", type=int, default=0, help="TensorBoard port (0: any free port)")
    p.add_argument("--width", type=int, default=1600, help="window width, CSS pixels")
    p.add_argument("--height", type=int, default=1000, help="window height, CSS pixels")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per view and for startup")
    p.add_argument("--url", action="append", default=[], metavar="NAME=PATH", help="extra view")
    args = p.parse_args(argv)
    if not args.logdir.is_dir():
        p.error(f"logdir {args.logdir} is not a folder")
    args.views = list(VIEWS)
    for item in args.url:
        name, sep, path = item.partition("=")
        if not sep or not name.replace("_", "").replace("-", "").isalnum():
            p.error(f"--url {item!r}: expected NAME=PATH with NAME of letters, digits, _ or -")
        args.views.append((name, path if path.startswith("/") else "/" + path, None))
    return args


def on_sigterm(signum: int, _frame: Any) -> None:
    """Turn SIGTERM into KeyboardInterrupt so that the ``finally`` blocks clean up."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the check; return the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("error: no chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("error: pip install playwright (no 'playwright install')", file=sys.stderr)
        return 2
    port = args.port or free_port()
    base = f"http://{HOST}:{port}"
    results: list[dict] = []
    proc = None
    try:
        proc = start_tensorboard(args.logdir, port, args.out / "tensorboard.log")
        runs = wait_for_tensorboard(proc, base, args.timeout)
        print(f"tensorboard: {base}, {len(runs)} runs")
        with sync_playwright() as pw:
            try:
                browser = pw.chromium.launch(
                    executable_path=chromium, args=["--no-proxy-server", "--disable-dev-shm-usage"]
                )
            except Exception as err:
                raise SetupError(f"chromium {chromium} did not start: {err}") from err
            try:
                for i, view in enumerate(args.views, 1):
                    path = args.out / f"{i:02d}_{view[0]}.png"
                    r = capture(browser, base, view, path, args)
                    results.append(r)
                    shown = path.name if r["ok"] else "FAILED"
                    note = f"  ({r['note']})" if r["note"] else ""
                    print(f"{view[0]:<24} {shown:<30} console errors: {len(r['errors'])}{note}")
            finally:
                with suppress(Exception):
                    browser.close()
    except SetupError as err:
        print(f"error: {err}; see {args.out / 'tensorboard.log'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the driver's lost connection
        print("interrupted: stopping tensorboard and the browser", file=sys.stderr)
        return 130
    finally:
        if proc is not None:
            stop_group(proc)
        write_console(args.out / "console.txt", results)
    saved = sum(r["ok"] for r in results)
    print(f"{saved}/{len(args.views)} views saved in {args.out}")
    return 0 if saved == len(args.views) else 1


if __name__ == "__main__":
    sys.exit(main())
