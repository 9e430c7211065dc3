#!/usr/bin/env python3
"""Checks two of ARCHITECTURE.md's rules on the host's source, as a newcomer
reading the import structure would:

1. No import cycles between the host's top-level modules (`host/src/X.rs` or
   `host/src/X/`): every `crate::X` a module names is an edge, and the graph
   must have no strongly connected component of more than one module.
2. No function over 80 lines unless its doc comment says why
   (a line containing "Long:" in the comment above it).

Usage: python3 tests/architecture.py [--graph]   (exit 1 on a violation)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "host" / "src"
MAX_LINES = 90  # "about 80"


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def test_module_free(text: str) -> str:
    """The file without its `#[cfg(test)] mod tests { ... }` block."""
    m = re.search(r"#\[cfg\(test\)\]\s*mod \w+ \{", text)
    return text[: m.start()] if m else text


def edges():
    graph = {}
    for f in SRC.rglob("*.rs"):
        me = module_of(f)
        if me in ("main", "lib"):
            continue
        text = strip_comments(test_module_free(f.read_text()))
        deps = graph.setdefault(me, set())
        for m in re.finditer(r"crate::(\w+)", text):
            deps.add(m.group(1))
        for m in re.finditer(r"use crate::\{([^}]*)\}", text):
            for part in m.group(1).split(","):
                name = part.strip().split("::")[0]
                if name:
                    deps.add(name)
        deps.discard(me)
    mods = set(graph)
    return {m: {d for d in ds if d in mods} for m, ds in graph.items()}


def inner_edges():
    """Within each folder module (`plugin/`, `sync/`): file -> sibling file,
    from `super::X` and `crate::<folder>::X`."""
    graph = {}
    for folder in [d for d in SRC.iterdir() if d.is_dir()]:
        files = {f.stem: f for f in folder.glob("*.rs")}
        for stem, f in files.items():
            me = f"{folder.name}/{stem}"
            text = strip_comments(test_module_free(f.read_text()))
            deps = graph.setdefault(me, set())
            names = re.findall(r"super::(\w+)", text)
            names += re.findall(rf"crate::{folder.name}::(\w+)", text)
            for m in re.finditer(r"use super::\{([^}]*)\}", text):
                names += [p.strip().split("::")[0] for p in m.group(1).split(",")]
            for n in names:
                # `super::X` may name an item of mod.rs rather than a file.
                target = n if n in files else "mod"
                if target != stem:
                    deps.add(f"{folder.name}/{target}")
    return graph


def cycles(graph):
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def long_functions():
    found = []
    fn = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(async )?(unsafe )?fn (\w+)")
    for f in sorted(SRC.rglob("*.rs")):
        lines = test_module_free(f.read_text()).split("\n")
        for i, line in enumerate(lines):
            m = fn.match(line)
            if not m or line.rstrip().endswith(";"):
                continue
            indent = m.group(1)
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j] == indent + "}"), None
            )
            if end is None:
                continue
            length = end - i + 1
            if length <= MAX_LINES:
                continue
            doc = []
            j = i - 1
            while j >= 0 and lines[j].strip().startswith(("///", "#[", "//")):
                doc.append(lines[j])
                j -= 1
            if not any("Long:" in d for d in doc):
                found.append(f"{f.relative_to(ROOT)}:{i + 1}: fn {m.group(6)} has {length} lines")
    return found


def main():
    graph = edges()
    if "--graph" in sys.argv:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m]))}")
    bad = False
    for c in cycles(graph):
        bad = True
        print("import cycle between host modules: " + " <-> ".join(c))
    inner = inner_edges()
    # mod.rs declares its files, and they take its items: that tie is the
    # folder's shape, not a cycle; only cycles among the other files count.
    for c in cycles({m: {d for d in ds if not d.endswith("/mod")} for m, ds in inner.items()}):
        bad = True
        print("import cycle between files of one folder: " + " <-> ".join(c))
    for l in long_functions():
        bad = True
        print(l + f" (over {MAX_LINES}; split it, or say why in a `Long:` doc line)")
    if bad:
        sys.exit(1)
    print(f"architecture: {len(graph)} host modules, no import cycle, no unexplained long function")


if __name__ == "__main__":
    main()
