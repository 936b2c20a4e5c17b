"""Check the built documentation site in a real headless Chromium.

Serves the built HTML (default ``docs/_build/html``) on a local HTTP server,
opens the index page, the API reference page, the ``make_loss`` API page and
the gallery in Chromium (driven by Playwright), and checks for each page that

* it loads (HTTP 200) and has a non-empty ``<h1>``,
* the browser logs no console errors and no uncaught script errors,
* every ``<img>`` has loaded (``complete`` and ``naturalWidth > 0``),
* every internal link (``<a href>`` not starting with http, mailto or #)
  points at a file that exists under the site.

It also checks that ``api.html`` lists every public name of ``jaxvae.__all__``
that is not a module, as link text or code. A full-page PNG screenshot of each
page is saved to ``--out``. One line is printed per check; the exit status is
0 when everything passes, 1 on any failure, 2 when Chromium or Playwright is
missing.

Usage::

    python docs/check_site.py [--site docs/_build/html] [--out DIR] [--chromium PATH]
"""

import argparse
import functools
import glob
import http.server
import inspect
import os
import shutil
import sys
import threading
import urllib.parse

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)

INSTALL_HINT = (
    "Install Debian's browser with `apt-get install -y chromium` (or pass "
    "--chromium PATH) and the Python package with `pip install playwright`; "
    "`playwright install` is not needed."
)

# JavaScript run in the page: wait for every image to settle, then report them.
IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) img.loading = "eager";
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(r => { img.onload = img.onerror = r; setTimeout(r, 10000); })));
  return imgs.map(img => ({src: img.getAttribute("src"),
                           ok: img.complete && img.naturalWidth > 0}));
}"""


def parse_args():
    """Return the command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", default=os.path.join(DOCS, "_build", "html"),
                   help="folder of the built HTML site")
    p.add_argument("--out", default=os.path.join(DOCS, "_build", "screenshots"),
                   help="folder for the full-page screenshots")
    p.add_argument("--chromium", default=None,
                   help="Chromium binary (default: `chromium` on PATH)")
    return p.parse_args()


def public_names():
    """Names in ``jaxvae.__all__`` that are not modules, imported from the repo root."""
    sys.path.insert(0, ROOT)
    import jaxvae
    return [n for n in jaxvae.__all__ if not inspect.ismodule(getattr(jaxvae, n))]


def serve(site):
    """Serve ``site`` on a free local port in a background thread; return its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


class Report:
    """Collect and print check results, one line each."""

    def __init__(self):
        self.failures = []

    def check(self, page, what, problems):
        """Print PASS or FAIL for ``what`` on ``page``; ``problems`` lists what went wrong."""
        if problems:
            self.failures.append(f"{page}: {what}")
            print(f"FAIL  {page}: {what}")
            for p in problems:
                print(f"        - {p}")
        else:
            print(f"PASS  {page}: {what}")


def broken_links(site, page_rel, hrefs):
    """Internal hrefs of the page at ``page_rel`` that name no file under ``site``."""
    bad = []
    for href in hrefs:
        if not href or href.startswith(("http:", "https:", "mailto:", "#", "//")):
            continue
        target = urllib.parse.urlsplit(urllib.parse.urljoin("/" + page_rel, href)).path
        path = os.path.join(site, urllib.parse.unquote(target).lstrip("/"))
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if not os.path.isfile(path):
            bad.append(f"{href} -> missing {os.path.relpath(path, site)}")
    return sorted(set(bad))


def check_page(browser, base, site, rel, out, report):
    """Load one page, run the per-page checks, save its screenshot.

    Returns the open page, or None when it did not load (its other checks are skipped).
    """
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    # Chromium itself asks the server root for /favicon.ico when a page names no
    # icon; that 404 is an artefact of serving the site, not an error of the site.
    favicon = base + "favicon.ico"
    page.on("console", lambda m: errors.append(f"{m.text} [{m.location.get('url')}]")
            if m.type == "error" and m.location.get("url") != favicon else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    response = page.goto(base + rel, wait_until="load")
    status = response.status if response else None
    report.check(rel, "loads", [] if status == 200 else [f"HTTP status {status}"])
    if status != 200:
        return None
    h1 = [t.strip() for t in page.locator("h1").all_inner_texts()]
    report.check(rel, "has a non-empty <h1>", [] if any(h1) else ["no non-empty <h1>"])
    images = page.evaluate(IMAGES_JS)
    report.check(rel, f"all {len(images)} images load",
                 [f"not loaded: {i['src']}" for i in images if not i["ok"]])
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
    report.check(rel, f"internal links resolve ({len(hrefs)} links)",
                 broken_links(site, rel, hrefs))
    page.wait_for_load_state("networkidle")
    report.check(rel, "no console errors", errors)
    shot = os.path.join(out, os.path.splitext(os.path.basename(rel))[0] + ".png")
    page.screenshot(path=shot, full_page=True)
    print(f"      screenshot: {shot}")
    return page


def check_api_names(page, names, report):
    """Check that every public name appears as link text or code on the API page.

    Only the main content counts: the theme's sidebar lists every generated page
    whether or not the reference table names it.
    """
    main = "article" if page.locator("article").count() else "body"
    texts = set(page.eval_on_selector_all(
        f"{main} a, {main} code", "els => els.map(e => e.textContent.trim())"))
    shown = {t.rsplit(".", 1)[-1].split("(")[0] for t in texts}
    missing = [n for n in names if n not in shown]
    report.check("api.html", f"lists all {len(names)} public names of jaxvae.__all__",
                 [f"not listed: {', '.join(missing)}"] if missing else [])


def main():
    """Run every check; exit 0 on success, 1 on failure, 2 without a browser."""
    args = parse_args()
    chromium = (shutil.which(args.chromium) if args.chromium
                else shutil.which("chromium") or shutil.which("chromium-browser"))
    if not chromium:
        print(f"error: Chromium not found. {INSTALL_HINT}", file=sys.stderr)
        sys.exit(2)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print(f"error: Playwright not installed. {INSTALL_HINT}", file=sys.stderr)
        sys.exit(2)
    site = os.path.abspath(args.site)
    if not os.path.isfile(os.path.join(site, "index.html")):
        print(f"error: no built site at {site}; build it with "
              "`cd docs && python -m sphinx -b html . _build/html`", file=sys.stderr)
        sys.exit(1)
    api_pages = glob.glob(os.path.join(site, "_api", "*make_loss.html"))
    pages = ["index.html", "api.html",
             os.path.relpath(api_pages[0], site) if api_pages else "_api/jaxvae.make_loss.html",
             "gallery.html"]
    os.makedirs(args.out, exist_ok=True)
    names = public_names()
    base = serve(site)
    report = Report()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        for rel in pages:
            page = check_page(browser, base, site, rel, args.out, report)
            if page and rel == "api.html":
                check_api_names(page, names, report)
            if page:
                page.close()
        browser.close()
    if report.failures:
        print(f"\n{len(report.failures)} check(s) failed:", file=sys.stderr)
        for f in report.failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    print(f"\nAll checks passed on {len(pages)} pages.")


if __name__ == "__main__":
    main()
