#!/usr/bin/env python3
"""Check the links of the built mdBook: every relative link and image of book/book/**/*.html
must resolve to a file, and a link with a #fragment into a page of the book must name an id of
that page. External links (http:, https:, mailto:, ...) are not fetched.

It also catches broken `{{#include FILE:ANCHOR}}` directives, which mdBook 0.4 only logs: a
missing file leaves the directive's text in the page, and a missing anchor an empty code block.

Usage: python3 book/check_links.py [BUILD_DIR]   (default: the book/book next to this script)
Exit status: 0 when everything resolves, 1 otherwise (each problem is printed).
"""

import html.parser
import os
import sys
import urllib.parse

# Files mdBook writes for its own machinery; their links are mdBook's business.
SKIP_PAGES = {"404.html", "toc.html"}


class Page(html.parser.HTMLParser):
    """The links (href/src), the element ids and the empty code blocks of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []
        self.ids = set()
        self.empty_code_blocks = 0
        self._after_pre = False
        self._code = None  # text of the <pre><code> block being read

    def handle_data(self, data):
        if self._code is not None:
            self._code.append(data)

    def handle_endtag(self, tag):
        if tag == "code" and self._code is not None:
            if not "".join(self._code).strip():
                self.empty_code_blocks += 1
            self._code = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "code" and self._after_pre:
            self._code = []
        self._after_pre = tag == "pre"
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for attr in ("href", "src"):
            value = attrs.get(attr)
            if value is not None and tag in ("a", "img", "link", "script", "source", "iframe"):
                self.links.append((tag, attr, value.strip()))


def parse(path, cache):
    if path not in cache:
        page = Page()
        with open(path, encoding="utf-8") as f:
            page.feed(f.read())
        cache[path] = page
    return cache[path]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "book"))
    if not os.path.isdir(root):
        print(f"check_links: {root} does not exist; run `mdbook build book` first")
        return 1
    cache = {}
    broken = []
    pages = links = 0
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(".html") or name in SKIP_PAGES:
                continue
            path = os.path.join(dirpath, name)
            rel_page = os.path.relpath(path, root)
            pages += 1
            page = parse(path, cache)
            with open(path, encoding="utf-8") as f:
                if "{{#include" in f.read():
                    broken.append(f"{rel_page}: an {{{{#include}}}} directive was not expanded "
                                  "(missing file; see mdbook's log)")
            if page.empty_code_blocks:
                broken.append(f"{rel_page}: {page.empty_code_blocks} empty code block(s) "
                              "(an {{#include FILE:ANCHOR}} whose anchor does not exist?)")
            for tag, attr, url in page.links:
                parts = urllib.parse.urlsplit(url)
                if parts.scheme or url.startswith("//") or url in ("", "#"):
                    continue  # external, or mdBook's empty placeholders
                links += 1
                if parts.path:
                    target = os.path.normpath(
                        os.path.join(dirpath, urllib.parse.unquote(parts.path))
                    )
                    if os.path.isdir(target):
                        target = os.path.join(target, "index.html")
                else:
                    target = path  # a fragment of the same page
                if not target.startswith(root + os.sep) and target != root:
                    broken.append(f"{rel_page}: <{tag} {attr}=\"{url}\"> leaves the book")
                    continue
                if not os.path.isfile(target):
                    broken.append(f"{rel_page}: <{tag} {attr}=\"{url}\"> -> missing file "
                                  f"{os.path.relpath(target, root)}")
                    continue
                fragment = urllib.parse.unquote(parts.fragment)
                if fragment and target.endswith(".html"):
                    if fragment not in parse(target, cache).ids:
                        broken.append(f"{rel_page}: <{tag} {attr}=\"{url}\"> -> no id "
                                      f"\"{fragment}\" in {os.path.relpath(target, root)}")
    if pages == 0:
        print(f"check_links: no HTML page under {root}")
        return 1
    for b in broken:
        print(f"broken: {b}")
    print(f"check_links: {pages} pages, {links} relative links, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
