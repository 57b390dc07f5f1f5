"""Screenshots of every staff page, for review (not committed): `make screenshots`, or

    python -m scripts.screenshots [--base URL] [--only PATH ...] [--widths 1366,360]
                                  [--out var/screenshots] [--email E] [--password P]

The pages come from the ISP host's URL conf (ispops.urls): every route without
parameters outside the subscriber portal, the captive portal and the sign-in pages,
then one page of each route with parameters, found as a link on the pages already
visited (a customer, an invoice, a router... of the demo data). Each is taken at every
width, whole page, to OUT/<name>-<width>.png. A page that does not answer 200 with
HTML to the signed-in owner (a POST-only action, a download, a technician's own page)
is listed as skipped, not taken.

Without --base it serves the demo ISP itself (`manage.py runserver` on a free port,
stopped at the end), so `make run` need not be running; the demo must be seeded.
Playwright drives Debian's chromium (ISPOPS_CHROMIUM, default /usr/bin/chromium)."""

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("ISPOPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
DEMO_EMAIL, DEMO_PASSWORD = "owner@demo.ispops.local", "demo-pass-2026"
# Not staff pages: the subscriber portal, the captive portal, the public pay page,
# signed document links, and signing in and out.
SKIP_NAMESPACES = {"portal", "captive"}
SKIP_NAMES = {
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "document_link",
    "payments:pay",
}


def routes(urlconf: str = "ispops.urls") -> list[tuple[str, str, bool]]:
    """(route, name, has parameters) of every staff URL of the ISP's host, in URL-conf
    order; route like "subscribers/<int:pk>/"."""
    from django.urls import URLResolver, get_resolver

    found = []

    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = pattern.namespace or ""
                ns = ":".join(part for part in (namespace, inner) if part)
                if inner in SKIP_NAMESPACES:
                    continue
                walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
                continue
            route = prefix + str(pattern.pattern)
            name = ":".join(part for part in (namespace, pattern.name or "") if part)
            if name in SKIP_NAMES or pattern.name in SKIP_NAMES:
                continue
            if route.startswith("^") or "(?P" in route:
                continue  # a regex route: none among the staff pages
            found.append((route, name or route, "<" in route))

    walk(get_resolver(urlconf).url_patterns, "", "")
    return found


def file_name(name: str, width: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "home"
    return f"{slug}-{width}.png"


def route_of(path: str, urlconf: str = "ispops.urls") -> str | None:
    """The route (as routes() spells it) a path resolves to, or None."""
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path, urlconf=urlconf)
    except Resolver404:
        return None
    return match.route


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve() -> tuple[subprocess.Popen, str]:
    """The demo ISP served by runserver on a free port: (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except urllib.error.HTTPError:
            break  # it answers (a worker may be down: the pages do not need one)
        except OSError:
            time.sleep(0.2)
    else:
        proc.terminate()
        raise SystemExit(f"runserver on port {port} did not answer")
    return proc, f"http://demo.localhost:{port}"


def log_in(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    if "/login/" not in page.url:
        return
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if "/login/" in page.url:
        raise SystemExit(f"could not sign in as {email} at {base}")


def visit(page, url: str) -> str | None:
    """Open `url`; why it cannot be taken, or None when it is a page to take."""
    try:
        response = page.goto(url, wait_until="load")
    except Exception as exc:  # a download, an error status with no body, no answer
        return _why(str(exc).splitlines()[0])
    if response is None:
        return "no response"
    if response.status != 200:
        return f"status {response.status}"
    if "text/html" not in (response.headers.get("content-type") or ""):
        return response.headers.get("content-type", "not HTML")
    if "/login/" in page.url:
        return "sent to sign in"
    # Parts that htmx loads after the page (a router's monitoring charts); a page that
    # keeps polling is taken as it is after 5 s.
    with contextlib.suppress(Exception):
        page.wait_for_load_state("networkidle", timeout=5_000)
    return None


def _why(error: str) -> str:
    if "Download is starting" in error:
        return "a download"
    if "ERR_HTTP_RESPONSE_CODE_FAILURE" in error:
        return "an error status (a POST-only action)"
    return error[:100]


def links(page, base: str) -> list[str]:
    """Paths of same-host links on the page (without query or fragment)."""
    host = urlsplit(base).netloc
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    out = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.netloc == host and parts.path not in out:
            out.append(parts.path)
    return out


def take(base: str, only: list[str], widths: list[int], out: Path, email: str, password: str):
    """Take the screenshots in a chromium of its own; see shoot()."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            return shoot(browser, base, only, widths, out, email, password)
        finally:
            browser.close()


def shoot(browser, base, only, widths, out: Path, email: str, password: str):
    """Take the screenshots with `browser`; returns (pages taken, files written,
    skipped {(path, why): [widths]})."""
    every = routes()
    wanted = [(f"/{route}", name) for route, name, params in every if not params]
    with_params = {route: name for route, name, params in every if params}
    if only:
        names = {route: name for route, name, _ in every}
        wanted = [(path, names.get(route_of(path) or "", path)) for path in only]
    out.mkdir(parents=True, exist_ok=True)
    written, skipped, taken = [], {}, set()
    for n, width in enumerate(widths):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        log_in(page, base, email, password)
        queue = list(wanted)
        details: dict[str, tuple[str, str]] = {}
        while queue:
            path, name = queue.pop(0)
            why = visit(page, f"{base}{path}")
            if why:
                skipped.setdefault((path, why), []).append(width)
                # A fresh tab (same session): chromium's error page or a download left
                # in this one would cut the next navigation short.
                page.close()
                page = context.new_page()
                page.set_default_timeout(30_000)
                continue
            page.screenshot(path=str(out / file_name(name, width)), full_page=True)
            written.append(out / file_name(name, width))
            taken.add(path)
            if only or n:
                continue
            for link in links(page, base):
                route = route_of(link)
                if route in with_params and route not in details:
                    details[route] = (link, with_params[route])
                    queue.append(details[route])
        # The widths after the first take the same details.
        wanted = wanted + [d for d in details.values() if d not in wanted]
        context.close()
    return taken, written, skipped


def main(argv=None, *, browser=None) -> int:
    """The command; `browser`: a Playwright browser to use instead of starting one
    (a test's, whose Playwright already runs in this thread)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a running demo, e.g. http://demo.localhost:8000")
    parser.add_argument("--only", action="append", default=[], help="just this path")
    parser.add_argument("--widths", default="1366,360", help="comma-separated, in px")
    parser.add_argument("--out", default=str(ROOT / "var" / "screenshots"))
    parser.add_argument("--email", default=DEMO_EMAIL)
    parser.add_argument("--password", default=DEMO_PASSWORD)
    args = parser.parse_args(argv)
    try:
        widths = [int(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--widths {args.widths!r}: give numbers like 1366,360")
    if not widths or any(not 200 <= w <= 4000 for w in widths):
        parser.error("--widths: each between 200 and 4000 px")
    bad = [p for p in args.only if not p.startswith("/")]
    if bad:
        parser.error(f"--only {bad[0]!r}: give a path starting with /")

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ispops.settings")
    django.setup()
    server = None
    base = args.base.rstrip("/") if args.base else None
    if base is None:
        server, base = serve()
    started = time.monotonic()
    try:
        todo = (base, args.only, widths, Path(args.out), args.email, args.password)
        if browser is None:
            taken, written, skipped = take(*todo)
        else:
            taken, written, skipped = shoot(browser, *todo)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    for (path, why), at in sorted(skipped.items()):
        print(f"  skipped {path} at {','.join(map(str, at))} px: {why}")
    print(
        f"{len(taken)} pages, {len(written)} screenshots at {','.join(map(str, widths))} px"
        f" in {args.out} ({time.monotonic() - started:.0f} s)"
    )
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
