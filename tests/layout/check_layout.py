#!/usr/bin/env python3
"""Guards the source layout the team agreed on, so it stays true as the code grows.

For each crate's `src/` (app, balancer, xtask, shared, tests):
1. no import cycle among its files: a module's `crate::name` uses (in `use` lines and in paths)
   are edges; any cycle fails, printed as the chain of modules;
2. no function longer than 80 lines (rustfmt puts a function's closing brace at the indentation
   of its `fn` line, which is how the end is found).

Prints the module graph with `--graph`. `--self-test` runs both checks on small broken inputs.
Exit 1 with one line per problem.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRATES = ["app", "balancer", "xtask", "shared", "tests"]
MAX_FN_LINES = 80
FN = re.compile(r"^(\s*)(?:pub(?:\([a-z]+\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")
USE = re.compile(r"\bcrate::(\w+)")
GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = [p for p in rel.parts if p != "mod"]
    return parts[0] if parts else "main"


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def edges_of(text: str) -> set:
    code = strip_comments(text)
    names = set(USE.findall(code))
    for group in GROUP.findall(code):
        names.update(re.findall(r"(?:^|[,{\s])(\w+)(?=::|\s*[,}]|$)", group))
    return names


def graph_of(src: Path) -> dict:
    files = sorted(src.rglob("*.rs"))
    modules = {module_name(f, src) for f in files}
    graph = {m: set() for m in modules}
    for f in files:
        me = module_name(f, src)
        for target in edges_of(f.read_text()):
            if target in modules and target != me:
                graph[me].add(target)
    return graph


def find_cycle(graph: dict):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def long_functions(text: str):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                if j - i + 1 > MAX_FN_LINES:
                    yield m.group(2), i + 1, j - i + 1
                break


def problems_in(crate_src: Path, label: str):
    problems = []
    cycle = find_cycle(graph_of(crate_src))
    if cycle:
        problems.append(f"{label}: import cycle: {' -> '.join(cycle)}")
    for f in sorted(crate_src.rglob("*.rs")):
        for name, line, length in long_functions(f.read_text()):
            rel = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
            problems.append(f"{rel}:{line}: fn {name} is {length} lines (limit {MAX_FN_LINES})")
    return problems


def self_test():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        (src / "a.rs").write_text("use crate::b::B;\n")
        (src / "b.rs").write_text("use crate::{c::C, x};\n")
        (src / "c.rs").write_text("fn f() {\n    crate::a::g();\n}\n")
        body = "\n".join(["    let _ = 1;"] * MAX_FN_LINES)
        (src / "d.rs").write_text(f"pub async fn long() {{\n{body}\n}}\n")
        found = problems_in(src, "self-test")
        assert any("a -> b -> c -> a" in p for p in found), found
        assert any("fn long is" in p for p in found), found
        (src / "c.rs").write_text("// crate::a is mentioned only in a comment\n")
        (src / "d.rs").write_text("fn short() {}\n")
        assert problems_in(src, "self-test") == [], problems_in(src, "self-test")
    print("self-test: a planted cycle and a planted long function were found; clean input passed")


def main():
    if "--self-test" in sys.argv:
        self_test()
    problems = []
    for crate in CRATES:
        src = ROOT / crate / "src"
        if "--graph" in sys.argv:
            for module, uses in sorted(graph_of(src).items()):
                print(f"{crate}/{module}: {', '.join(sorted(uses)) or '-'}")
        problems += problems_in(src, crate)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"layout: no import cycle and no function over {MAX_FN_LINES} lines in {', '.join(CRATES)}")


if __name__ == "__main__":
    main()
