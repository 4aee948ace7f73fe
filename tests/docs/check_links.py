#!/usr/bin/env python3
"""Every relative link and anchor in the front page and the docs points at something that exists.

Checks README.md, CONTRIBUTING.md and docs/*.md (or the files given): each `[text](target)`,
`![alt](target)` and `[label]: target` whose target is not a URL (`http:`, `https:`, `mailto:`) must
name a file or directory of the repository, and a `#anchor` (alone, or after a Markdown file) must be
a heading of that file, written as GitHub writes it: the heading's text lower-cased, every character
that is not a letter, a digit, a space, `-` or `_` dropped, each space turned into `-`, and `-1`,
`-2`, ... added to repeated headings. Explicit `<a id="...">` / `<a name="...">` anchors count too.
Links inside fenced code blocks and inline code are not links.

    python3 tests/docs/check_links.py [--self-test] [FILE.md ...]

Exit 0 when every link resolves; otherwise one line per broken link (`FILE:LINE: why`) and exit 1.
`--self-test` first checks the checker on a scratch tree where each kind of breakage is planted.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets (badges).
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=\"([^\"]+)\"", re.I)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def default_files(root: Path) -> list[Path]:
    files = [root / "README.md", root / "CONTRIBUTING.md"]
    files += sorted((root / "docs").glob("*.md"))
    return [f for f in files if f.exists()]


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        found: set[str] = set()
        seen: dict[str, int] = {}
        text = path.read_text(encoding="utf-8")
        for _, line in prose_lines(text):
            found.update(HTML_ANCHOR.findall(line))
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        cache[path] = found
    return cache[path]


def targets(text: str):
    """(line number, target) of every link outside code."""
    for number, line in prose_lines(text):
        bare = INLINE_CODE.sub("", line)
        for m in INLINE_LINK.finditer(bare):
            yield number, m.group(1)
        m = REFERENCE_DEF.match(bare)
        if m:
            yield number, m.group(1)


def problems_in(files: list[Path], root: Path) -> list[str]:
    problems = []
    cache: dict[Path, set[str]] = {}
    for source in files:
        text = source.read_text(encoding="utf-8")
        where = source.relative_to(root) if source.is_relative_to(root) else source
        for number, target in targets(text):
            if not target or EXTERNAL.match(target) or target.startswith("//"):
                continue
            path_part, _, anchor = target.partition("#")
            path_part = path_part.split("?", 1)[0]
            if path_part:
                dest = (source.parent / path_part).resolve()
                if path_part.startswith("/"):
                    dest = (root / path_part.lstrip("/")).resolve()
                if not dest.exists():
                    problems.append(f"{where}:{number}: {target}: no such file")
                    continue
            else:
                dest = source
            if anchor and dest.suffix == ".md" and dest.is_file():
                if anchor not in anchors_of(dest, cache):
                    name = dest.relative_to(root) if dest.is_relative_to(root) else dest
                    problems.append(f"{where}:{number}: {target}: no heading #{anchor} in {name}")
    return problems


def self_test() -> None:
    """Plant each breakage in a scratch tree; the check must name every one and nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        (root / "docs" / "img.png").write_bytes(b"")
        (root / "docs" / "A.md").write_text(
            "# Title\n\n## HTTP/2 to the replicas (issue 15)\n\n## `[[route]]`: routes\n\n"
            "## The app's variables\n\n## Same\n\n## Same\n\n<a id=\"custom\"></a>\n\n"
            "```sh\n## not a heading\n```\n"
        )
        (root / "README.md").write_text(
            "[ok](docs/A.md#http2-to-the-replicas-issue-15) [ok](docs/A.md#route-routes)\n"
            "[ok](docs/A.md#the-apps-variables) [ok](docs/A.md#same-1) [ok](docs/A.md#custom)\n"
            "![ok](docs/img.png) [ok](docs/) [ok](https://example.com/x#y) [ok](#readme-heading)\n"
            "# README heading\n"
            "`[code](missing.md)` and\n```\n[fenced](missing.md)\n```\n"
            "[bad file](docs/B.md)\n"
            "[bad anchor](docs/A.md#http2-to-the-replicas)\n"
            "[bad self anchor](#nowhere)\n"
            "[bad twice](docs/A.md#same-2)\n"
            "[bad fenced heading](docs/A.md#not-a-heading)\n"
            "[ref]: docs/missing.png\n"
        )
        found = problems_in([root / "README.md"], root)
        expected = ["B.md", "#http2-to-the-replicas", "#nowhere", "#same-2", "#not-a-heading", "missing.png"]
        for needle in expected:
            assert any(needle in p for p in found), f"self-test: {needle} not caught: {found}"
        assert len(found) == len(expected), f"self-test: unexpected problems: {found}"
    assert slug("Through Docker Compose (`cargo xtask bench --compose`)") == (
        "through-docker-compose-cargo-xtask-bench---compose"
    )
    print("check_links self-test: ok")


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--self-test"]
    if "--self-test" in argv:
        self_test()
    files = [Path(a).resolve() for a in args] or default_files(ROOT)
    problems = problems_in(files, ROOT)
    for p in problems:
        print(p)
    if problems:
        print(f"check_links: {len(problems)} broken link(s)", file=sys.stderr)
        return 1
    print(f"check_links: ok ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
