#!/usr/bin/env python3
# sim/check_report.py REPORT.html [REQUIRED_TEXT...] — is report.html well-formed?
#
# Checks what a browser would forgive but a broken generator would show:
# every non-void HTML element is closed in order (html.parser), every inline
# <svg> is well-formed XML (xml.etree), nothing is loaded from outside
# (no src=, no href= to http, no <script>), and each REQUIRED_TEXT appears.
# Exit 0 when all hold, 1 with one line per problem otherwise.
# Used by sim/test_sim_report.sh and sim/test_sim_run.sh.
import html.parser
import re
import sys
import xml.etree.ElementTree as ET

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source"}


class Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.problems.append("a <script> element")
        for k, v in attrs:
            if k == "src" or (k == "href" and v and v.startswith("http")):
                self.problems.append(f"an external resource: {k}={v}")
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        pass  # <rect .../> inside svg

    def handle_endtag(self, tag):
        if not self.stack:
            self.problems.append(f"</{tag}> at {self.getpos()} closes nothing")
            return
        top, pos = self.stack.pop()
        if top != tag:
            self.problems.append(f"</{tag}> at {self.getpos()} closes <{top}> opened at {pos}")


def main():
    if len(sys.argv) < 2:
        print("usage: check_report.py REPORT.html [REQUIRED_TEXT...]")
        return 2
    text = open(sys.argv[1], encoding="utf-8").read()
    c = Checker()
    c.feed(text)
    c.close()
    problems = list(c.problems)
    for tag, pos in c.stack:
        problems.append(f"<{tag}> opened at {pos} is never closed")
    if not text.startswith("<!DOCTYPE html>"):
        problems.append("no <!DOCTYPE html> first")
    svgs = re.findall(r"<svg\b.*?</svg>", text, re.S)
    if not svgs:
        problems.append("no inline <svg> chart")
    for i, s in enumerate(svgs):
        try:
            ET.fromstring(s)
        except ET.ParseError as e:
            problems.append(f"svg #{i} is not well-formed XML: {e}")
    for need in sys.argv[2:]:
        if need not in text:
            problems.append(f"missing text: {need!r}")
    for p in problems:
        print("report:", p)
    print(f"{sys.argv[1]}: {len(svgs)} svg charts, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
