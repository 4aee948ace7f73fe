#!/usr/bin/env python3
"""Guards the source layout the team agreed on, so it stays true as the code grows.

For each crate (app, balancer, xtask, shared, tests):

1. modules: a module is a `.rs` file under `src/`; its path is the file path relative to `src/`
   without `.rs`, with `mod` dropped, joined with `::` (`front/server.rs` is `front::server`,
   `front/mod.rs` is `front`); the crate roots are `lib` and `main`. Its imports are the paths
   that start with `crate::`, `super::` (relative to the current module, inline `mod tests { }`
   blocks included), `self::` and, in a binary beside a `lib.rs`, `<crate_name>::`, with `{a, b::{c}}`
   groups expanded. Comments and string literals do not count; test code does. Each import
   resolves to the longest prefix that is an existing module (an item resolves to the module
   that defines it);
2. no import cycle between modules, ignoring the edges between a folder's `mod.rs` (or a crate
   root) and its own descendants, which are containment (declaring and re-exporting children,
   children naming what their parent re-exports), not dependencies;
3. no import cycle between top-level units (the first path segment: a folder or a top-level
   file), so `proxy` using `backends` and `backends` using `proxy` fails whichever files do it;
4. no function longer than 80 lines in any `.rs` file of the crate (`src/`, `tests/`, `examples/`,
   `benches/`, `build.rs`); rustfmt puts a function's closing brace at the indentation of its
   `fn` line, which is how the end is found;
5. no `.rs` file longer than 600 lines;
6. where the crate has an `ARCHITECTURE.md`, its `| module | owns | uses |` table has exactly one
   row per module (first cell the backticked module path, `owns` not empty), names no module that
   does not exist, and each `uses` cell is exactly the modules the code imports (ancestors
   included, its own descendants and itself excluded), backticked, sorted, comma-separated, or
   `—` when none.

Flags: `--graph` prints each module's uses; `--write-uses` rewrites the `uses` cells of every
ARCHITECTURE.md from the code before checking; `--self-test` first plants each failure in a
throwaway crate and checks it is found (and that a clean crate passes).
Exit 1 with one line per problem.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRATES = ["app", "balancer", "xtask", "shared", "tests"]
MAX_FN_LINES = 80
MAX_FILE_LINES = 600
ROOTS = ("lib", "main")
NONE = "—"
FN = re.compile(r'^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+""\s+)?fn\s+(\w+)')
TABLE_HEADER = re.compile(r"^\|\s*module\s*\|\s*owns\s*\|\s*uses\s*\|\s*$")
RAW = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'")
VISIBILITY = re.compile(r"\(\s*in\s+$")
IDENT = re.compile(r"(?:r#)?(\w+)")
PATH_SEP = re.compile(r"\s*::\s*(?!<)")
ROW_MODULE = re.compile(r"^`(\w+(?:::\w+)*)`$")


# ---------------------------------------------------------------------------------------------
# Source text: comments and literals out, line structure kept.


def strip_comments(text: str) -> str:
    """The code with comments, string and char literals blanked (newlines kept, so line numbers
    and indentation stay true)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif c in "br" and (raw := RAW.match(text, i)) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + raw.group(1)
            end = text.find(close, i + raw.end())
            end = n if end < 0 else end + len(close)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and (char := CHAR.match(text, i)):
            out.append("' '")
            i = char.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Imports: every `crate::`/`super::`/`self::`/`<crate>::` path, with use groups expanded.


def _parse_tree(code: str, i: int, prefix: list, out: list) -> int:
    """Parses a path or use tree at `code[i:]` (just after a `::`) into `out`; returns the end."""
    n = len(code)
    while i < n and code[i].isspace():
        i += 1
    if i < n and code[i] == "{":
        i += 1
        while i < n:
            while i < n and (code[i].isspace() or code[i] == ","):
                i += 1
            if i >= n or code[i] == "}":
                return i + 1
            i = _parse_tree(code, i, prefix, out)
            while i < n and code[i] not in ",}":
                i += 1  # `as name`
        return i
    m = IDENT.match(code, i)
    if not m or code[i] == "*":
        out.append(prefix)
        return i + (1 if i < n and code[i] == "*" else 0)
    name, i = m.group(1), m.end()
    path = prefix if name == "self" else prefix + [name]  # `{self, x}`: the group's own path
    sep = PATH_SEP.match(code, i)
    if sep:
        return _parse_tree(code, sep.end(), path, out)
    out.append(path)
    return i


def imports_of(text: str, module: tuple, extra_root: str = ""):
    """Yields `(anchor, segments)` for each import in a file whose module path is `module`:
    anchor is `crate`, `lib` (via `<crate_name>::`) or `rel` (segments already absolute)."""
    code = strip_comments(text)
    roots = "crate|super|self" + (f"|{extra_root}" if extra_root else "")
    token = re.compile(r"\bmod\s+(?:r#)?(\w+)\s*\{|[{}]|(?<![\w:])\$?\b(" + roots + r")\s*::")
    inline, depth, i = [], 0, 0
    while m := token.search(code, i):
        i = m.end()
        text_ = m.group(0)
        if m.group(1):
            depth += 1
            inline.append((m.group(1), depth))
        elif text_ == "{":
            depth += 1
        elif text_ == "}":
            if inline and inline[-1][1] == depth:
                inline.pop()
            depth -= 1
        elif VISIBILITY.search(code, max(0, m.start() - 8), m.start()):
            continue  # `pub(in crate::a)` is a visibility, not a use
        else:
            paths = []
            i = _parse_tree(code, i, [m.group(2)], paths)
            here = list(module) + [name for name, _ in inline]
            for path in paths:
                resolved = _anchor(path, here, extra_root)
                if resolved:
                    yield resolved


def _anchor(path: list, here: list, extra_root: str):
    head, rest = path[0], path[1:]
    if head == "crate":
        return "crate", tuple(rest)
    if extra_root and head == extra_root:
        return "lib", tuple(rest)
    base = list(here)
    if head == "super":
        base = base[:-1] if base else None
        while rest and rest[0] == "super" and base is not None:
            base, rest = (base[:-1] if base else None), rest[1:]
        if base is None:
            return None
    return "rel", tuple(base + list(rest))


# ---------------------------------------------------------------------------------------------
# Modules and their graph.


def module_path(path: Path, src: Path) -> tuple:
    rel = path.relative_to(src).with_suffix("")
    return tuple(p for p in rel.parts if p != "mod")


def display(module) -> str:
    return module if isinstance(module, str) else "::".join(module)


def crate_name(crate_dir: Path) -> str:
    toml = crate_dir / "Cargo.toml"
    if toml.exists():
        package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", toml.read_text(), re.M | re.S)
        name = package and re.search(r'^name\s*=\s*"([^"]+)"', package.group(1), re.M)
        if name:
            return name.group(1).replace("-", "_")
    return crate_dir.name.replace("-", "_")


class Crate:
    """One crate's modules (roots as `"lib"`/`"main"`, the others as path tuples) and edges."""

    def __init__(self, crate_dir: Path):
        self.dir = crate_dir
        self.src = crate_dir / "src"
        self.files = {}
        for f in sorted(self.src.rglob("*.rs")) if self.src.is_dir() else []:
            path = module_path(f, self.src)
            key = path[0] if path in (("lib",), ("main",)) else path
            self.files[key] = f
        self.modules = set(self.files)
        self.texts = {m: f.read_text() for m, f in self.files.items()}
        self.owner = {m: self._owner(m) for m in self.modules}
        self.edges = {m: set() for m in self.modules}
        name = crate_name(crate_dir)
        for m in self.modules:
            extra = name if self.owner[m] == "main" and "lib" in self.modules else ""
            here = () if m in ROOTS else m
            for anchor, segments in imports_of(self.texts[m], here, extra):
                target = self.resolve(anchor, segments, self.owner[m])
                if target is not None and target != m:
                    self.edges[m].add(target)

    def _owner(self, module):
        """The crate root a module belongs to: a binary's own modules are those `main.rs` declares."""
        if module in ROOTS:
            return module
        if "lib" in self.modules and "main" in self.modules:
            declared = re.search(rf"^\s*(?:pub(?:\([\w ]+\))?\s+)?mod\s+{module[0]}\s*;",
                                 strip_comments(self.texts["main"]), re.M)
            return "main" if declared else "lib"
        return "lib" if "lib" in self.modules else "main"

    def resolve(self, anchor: str, segments: tuple, owner: str):
        root = "lib" if anchor == "lib" else owner
        for k in range(len(segments), 0, -1):
            candidate = segments[:k]
            if candidate in self.modules and self.owner[candidate] == root:
                return candidate
        return root if root in self.modules else None

    def is_descendant(self, module, ancestor) -> bool:
        if ancestor in ROOTS:
            return module not in ROOTS and self.owner[module] == ancestor
        return module not in ROOTS and len(module) > len(ancestor) and module[: len(ancestor)] == ancestor

    def uses(self, module) -> set:
        """What the ARCHITECTURE.md `uses` cell must list: imports minus own descendants."""
        return {t for t in self.edges[module] if not self.is_descendant(t, module)}

    def dependency_edges(self) -> dict:
        """Edges that are dependencies, not containment (neither end inside the other)."""
        return {m: {t for t in self.edges[m] if not self.is_descendant(t, m) and not self.is_descendant(m, t)}
                for m in self.modules}

    def unit_edges(self) -> dict:
        """Edges between top-level units, each with one module edge that makes it."""
        unit = lambda m: m if m in ROOTS else (m[0],)  # noqa: E731
        units = {}
        for m, targets in sorted(self.dependency_edges().items(), key=lambda kv: display(kv[0])):
            units.setdefault(unit(m), {})
            for t in sorted(targets, key=display):
                if unit(t) != unit(m):
                    units[unit(m)].setdefault(unit(t), (m, t))
                    units.setdefault(unit(t), {})
        return units


def find_cycles(graph: dict):
    """One cycle per strongly connected component of more than one node, as a closed chain."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ()), key=display):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph, key=display):
        if v not in index:
            connect(v)
    cycles = []
    for comp in sorted(comps, key=lambda c: min(display(v) for v in c)):
        start = min(comp, key=display)
        cycles.append(_cycle_through(graph, comp, start))
    return cycles


def _cycle_through(graph, comp, start):
    """The shortest path from `start` back to itself inside its component (breadth first)."""
    prev, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ()), key=display):
                if w not in comp:
                    continue
                if w == start:
                    chain = [v]
                    while chain[-1] != start:
                        chain.append(prev[chain[-1]])
                    return [start] + chain[::-1][1:] + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start, start]


# ---------------------------------------------------------------------------------------------
# Sizes.


def long_functions(text: str):
    lines = strip_comments(text).splitlines()
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";") or (line.count("{") and line.count("{") == line.count("}")):
            continue  # a declaration, or a one-line body
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                if j - i + 1 > MAX_FN_LINES:
                    yield m.group(2), i + 1, j - i + 1
                break


def rust_files(crate_dir: Path):
    for f in sorted(crate_dir.rglob("*.rs")):
        rel = f.relative_to(crate_dir).parts
        if not any(p == "target" or p.startswith(".") for p in rel):
            yield f


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


# ---------------------------------------------------------------------------------------------
# ARCHITECTURE.md.


def split_row(line: str):
    """A table row's cells as `(text, start, end)` spans, splitting on unescaped `|`."""
    bars = [k for k, ch in enumerate(line) if ch == "|" and (k == 0 or line[k - 1] != "\\")]
    return [(line[a + 1:b].strip(), a + 1, b) for a, b in zip(bars, bars[1:])]


def table_rows(lines: list):
    """`(line index, cells)` for each body row of each `| module | owns | uses |` table."""
    k = 0
    while k < len(lines):
        if TABLE_HEADER.match(lines[k].strip()):
            k += 2  # the header and its |---| line
            while k < len(lines) and lines[k].lstrip().startswith("|"):
                yield k, split_row(lines[k].strip())
                k += 1
        k += 1


def uses_cell(crate: Crate, module) -> str:
    names = sorted(display(t) for t in crate.uses(module))
    return ", ".join(f"`{n}`" for n in names) or NONE


def architecture_problems(crate: Crate, doc: Path, write: bool = False):
    lines = doc.read_text().splitlines()
    problems, seen, found_table, original = [], {}, False, list(lines)
    by_name = {display(m): m for m in crate.modules}
    for k, cells in list(table_rows(lines)):
        found_table = True
        where = f"{shown(doc)}:{k + 1}"
        if len(cells) != 3:
            problems.append(f"{where}: a row needs 3 cells (module, owns, uses), found {len(cells)}")
            continue
        name = ROW_MODULE.match(cells[0][0])
        if not name:
            problems.append(f"{where}: the first cell must be a backticked module path such as `front::server`, not {cells[0][0]!r}")
            continue
        name = name.group(1)
        if name in seen:
            problems.append(f"{where}: module {name} has a second row (first at line {seen[name] + 1})")
            continue
        seen[name] = k
        if name not in by_name:
            problems.append(f"{where}: row names module {name}, which does not exist (no {name.replace('::', '/')}.rs or {name.replace('::', '/')}/mod.rs under {shown(crate.src)})")
            continue
        if not cells[1][0]:
            problems.append(f"{where}: module {name} has an empty owns cell")
        expected = uses_cell(crate, by_name[name])
        if cells[2][0] != expected:
            if write:
                _, start, end = cells[2]
                line = lines[k].strip()
                lines[k] = f"{line[:start]} {expected} {line[end:]}"
            else:
                problems.append(f"{where}: uses of {name} should be: {expected}")
    if not found_table:
        problems.append(f"{shown(doc)}: no table with the header | module | owns | uses |")
    for name in sorted(set(by_name) - set(seen)):
        problems.append(f"{shown(doc)}: module {name} ({shown(crate.files[by_name[name]])}) has no row")
    if write and lines != original:
        doc.write_text("\n".join(lines) + "\n")
        changed = sum(a != b for a, b in zip(lines, original))
        print(f"{shown(doc)}: rewrote {changed} uses cell(s) from the code", file=sys.stderr)
    return problems


# ---------------------------------------------------------------------------------------------
# One crate.


def problems_in(crate_dir: Path, label: str, write_uses: bool = False):
    problems = []
    crate = Crate(crate_dir)
    for cycle in find_cycles(crate.dependency_edges()):
        problems.append(f"{label}: import cycle: {' -> '.join(display(m) for m in cycle)}")
    units = crate.unit_edges()
    for cycle in find_cycles({u: set(ts) for u, ts in units.items()}):
        why = "; ".join(f"{display(units[a][b][0])} uses {display(units[a][b][1])}" for a, b in zip(cycle, cycle[1:]))
        problems.append(f"{label}: top-level cycle: {' -> '.join(display(u) for u in cycle)} ({why})")
    for f in rust_files(crate_dir):
        text = f.read_text()
        count = len(text.splitlines())
        if count > MAX_FILE_LINES:
            problems.append(f"{shown(f)}: {count} lines (limit {MAX_FILE_LINES})")
        for name, line, length in long_functions(text):
            problems.append(f"{shown(f)}:{line}: fn {name} is {length} lines (limit {MAX_FN_LINES})")
    doc = crate_dir / "ARCHITECTURE.md"
    if doc.exists():
        problems += architecture_problems(crate, doc, write_uses)
    return problems


def graph_lines(crate_dir: Path, label: str):
    crate = Crate(crate_dir)
    for m in sorted(crate.modules, key=display):
        yield f"{label}/{display(m)}: {', '.join(sorted(display(t) for t in crate.uses(m))) or '-'}"


# ---------------------------------------------------------------------------------------------
# Self-test: a throwaway crate laid out like the balancer, then one planted failure at a time.

FIXTURE = {
    "Cargo.toml": '[package]\nname = "fix-bal"\nversion = "0.1.0"\n',
    "src/lib.rs": "//! root\npub mod config;\npub mod front;\npub mod proxy;\n\npub use front::serve;\npub struct Shared;\n",
    "src/main.rs": ("//! binary\nuse fix_bal::{config::Config, front};\n\nfn main() {\n"
                    "    let _ = \"crate::proxy is only text\";\n    front::serve(fix_bal::config::parse());\n}\n"),
    "src/config.rs": "//! flags\npub struct Config;\npub fn parse() -> Config {\n    Config\n}\n",
    "src/front/mod.rs": "//! doors\nmod server;\n\npub use server::serve;\npub use self::server::Door;\npub struct Limits;\n",
    "src/front/server.rs": ("//! listener\nuse super::Limits;\nuse crate::{config::Config, proxy::{self, headers::strip}};\n"
                            "// use crate::front::serve would be a comment\n"
                            "pub struct Door(Limits);\npub fn serve(_c: Config) {\n    let _ = (proxy::Proxy, strip, crate::Shared);\n}\n\n"
                            "#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::proxy::access_log::format::Line;\n\n"
                            "    #[test]\n    fn t() {\n        let _ = Line;\n    }\n}\n"),
    "src/proxy/mod.rs": "//! one request\npub mod access_log;\npub mod headers;\n\npub struct Proxy;\n",
    "src/proxy/headers.rs": "//! hop-by-hop\nuse crate::config::Config;\n\npub(in crate::proxy) fn one_line() {}\npub fn strip(_c: &Config) {\n    let c = '\"';\n    let _ = (c, \"use crate::front::Limits;\");\n}\n",
    "src/proxy/access_log/mod.rs": "//! lines\npub mod format;\n",
    "src/proxy/access_log/format.rs": "//! one line\nuse super::super::Proxy;\n\npub struct Line(pub Proxy);\n",
}

FIXTURE_USES = {
    "lib": NONE,
    "main": "`config`, `front`",
    "config": NONE,
    "front": NONE,
    "front::server": "`config`, `front`, `lib`, `proxy`, `proxy::access_log::format`, `proxy::headers`",
    "proxy": NONE,
    "proxy::headers": "`config`",
    "proxy::access_log": NONE,
    "proxy::access_log::format": "`proxy`",
}


def _fixture_doc(uses: dict) -> str:
    rows = "\n".join(f"| `{m}` | what {m} owns | {u} |" for m, u in uses.items())
    return f"# fix-bal\n\nIntro text with a | pipe.\n\n| module | owns | uses |\n|---|---|---|\n{rows}\n\nAfter the table.\n"


def _write(base: Path, files: dict):
    for rel, text in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)


def _expect(base: Path, planted: dict, needle: str, what: str):
    """Plants `planted` over a clean copy of the fixture and asserts exactly `needle` is reported."""
    import shutil

    if base.exists():
        shutil.rmtree(base)
    _write(base, FIXTURE)
    (base / "ARCHITECTURE.md").write_text(_fixture_doc(FIXTURE_USES))
    _write(base, planted)
    found = problems_in(base, "self-test")
    assert needle is None or any(needle in p for p in found), f"{what}: expected {needle!r} in {found}"
    return found


def self_test():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        # The historical flat case still holds: a three-file cycle, a comment that is no edge.
        flat = Path(tmp) / "flat"
        _write(flat, {"src/a.rs": "use crate::b::B;\n", "src/b.rs": "use crate::{c::C, x};\n",
                      "src/c.rs": "fn f() {\n    crate::a::g();\n}\n"})
        assert any("import cycle: a -> b -> c -> a" in p for p in problems_in(flat, "self-test"))
        _write(flat, {"src/c.rs": "// crate::a is mentioned only in a comment\n"})
        assert problems_in(flat, "self-test") == [], problems_in(flat, "self-test")

        base = Path(tmp) / "crate"
        clean = _expect(base, {}, None, "clean")
        assert clean == [], f"the clean fixture must pass: {clean}"
        crate = Crate(base)
        got = {display(m): uses_cell(crate, m) for m in crate.modules}
        assert got == FIXTURE_USES, f"resolved uses differ: {got}"

        _expect(base, {"src/proxy/headers.rs": "use super::access_log::format::Line;\npub fn strip() {}\n",
                       "src/proxy/access_log/format.rs": "use super::super::headers::strip;\npub struct Line;\n"},
                "self-test: import cycle: proxy::access_log::format -> proxy::headers -> proxy::access_log::format",
                "a cycle through super::")
        found = _expect(base, {"src/proxy/headers.rs": "use crate::{config::Config, front::Limits};\npub fn strip(_c: &Config) {}\n"},
                        "self-test: top-level cycle: front -> proxy -> front (front::server uses proxy; proxy::headers uses front)",
                        "a top-level cycle across folders")
        assert not any("import cycle" in p for p in found), f"no module-level cycle expected: {found}"
        _expect(base, {"src/proxy/retry.rs": "//! retries\n", "src/proxy/mod.rs": FIXTURE["src/proxy/mod.rs"] + "mod retry;\n"},
                "ARCHITECTURE.md: module proxy::retry (", "a module missing from ARCHITECTURE.md")
        _expect(base, {"ARCHITECTURE.md": _fixture_doc({**FIXTURE_USES, "proxy::gone": NONE})},
                "ARCHITECTURE.md:16: row names module proxy::gone, which does not exist", "a row naming a missing module")
        _expect(base, {"ARCHITECTURE.md": _fixture_doc({**FIXTURE_USES, "proxy::headers": NONE})},
                "ARCHITECTURE.md:13: uses of proxy::headers should be: `config`", "a wrong uses cell")
        _expect(base, {"examples/big.rs": "//! big\n" + "const X: u8 = 0;\n" * MAX_FILE_LINES},
                f"big.rs: {MAX_FILE_LINES + 1} lines (limit {MAX_FILE_LINES})", "a file over the limit")
        body = "\n".join(["    assert_eq!(1, 1);"] * MAX_FN_LINES)
        _expect(base, {"tests/it.rs": f"#[test]\nfn long_test() {{\n{body}\n}}\n"},
                f"it.rs:2: fn long_test is {MAX_FN_LINES + 2} lines", "a long function in an integration test")

        # --write-uses repairs a stale cell and leaves the rest of the document alone.
        _expect(base, {"ARCHITECTURE.md": _fixture_doc({**FIXTURE_USES, "main": NONE})},
                "uses of main should be: `config`, `front`", "a stale uses cell")
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()) as said:
            assert problems_in(base, "self-test", write_uses=True) == []
        assert "rewrote 1 uses cell(s)" in said.getvalue(), said.getvalue()
        assert (base / "ARCHITECTURE.md").read_text() == _fixture_doc(FIXTURE_USES)
    print("self-test: planted cycles (module through super::, top-level across folders), ARCHITECTURE.md "
          "drift (missing row, unknown module, wrong uses), a long file and a long test function were "
          "found; the clean crate passed and --write-uses repaired a stale cell")


def main():
    if "--self-test" in sys.argv:
        self_test()
    problems = []
    for crate in CRATES:
        if "--graph" in sys.argv:
            print("\n".join(graph_lines(ROOT / crate, crate)))
        problems += problems_in(ROOT / crate, crate, write_uses="--write-uses" in sys.argv)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"layout: no import cycle (module or top-level), no function over {MAX_FN_LINES} lines, no file over "
          f"{MAX_FILE_LINES} lines, ARCHITECTURE.md tables match the code, in {', '.join(CRATES)}")


if __name__ == "__main__":
    main()
