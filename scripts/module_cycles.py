#!/usr/bin/env python3
"""Finds import circles between the files of a Rust crate: an equivalent of
`cargo modules dependencies --acyclic` (crate `cargo-modules`) that needs no build, so CI does
not compile rust-analyzer's crates on every fresh machine. Python 3.11, standard library only.

    python3 scripts/module_cycles.py [SRC_DIR]    # default: src/ next to this script's folder
    python3 scripts/module_cycles.py --self-test  # checks the verdicts on throwaway trees

How it reads the crate:
- Each `SRC_DIR/**/*.rs` file is a module: `lib.rs`/`main.rs` the crate root, `a.rs` and
  `a/mod.rs` module `a`, `a/b.rs` module `a::b`. Inline `mod x { .. }` blocks are modules that
  live in their file. Comments, strings and characters are blanked first.
- Test code is left out: every item under exactly `#[cfg(test)]` (the `mod tests` blocks,
  test-only `use`s and functions), and files declared by `#[cfg(test)] mod x;` or marked
  `#![cfg(test)]`. Other `cfg`s (features, platforms) are kept: every build's imports count.
  `src/bin/` is skipped (binaries are crates of their own).
- Every `use` (nested braces, `as`, globs, `self`, several lines, `pub use` re-exports) and
  every path in code that starts with `crate::`, `super::`, `self::`, a child module's name or
  a name a `use` bound to a module (`crate::a::b::f(`, `super::x::Y`, `shared::Foo`) is
  resolved: the longest prefix that names a module gives the file, and the next segment is the
  name that ties the two files. A name the module only re-exports (`pub use x::Y`, including
  through globs) is followed to the file that defines it, so `crate::Error` counts as a use of
  `error.rs`, not of `lib.rs`.
- A file using something from its parent (`super::helper`) is an edge child -> parent; a
  parent declaring `mod child;` is not an edge (a parent's `use child::X` is).

It builds the file graph, finds the strongly connected components of more than one file
(Tarjan), and prints each with the shortest circle through each of its edges, every step
with the names that tie it. Exit status: 0 without circles, 1 with, 2 on a usage error.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

# ------------------------------------------------------------------------------------------
# Lexing: blank comments, strings and chars (keeping newlines), then a light tokenizer.
# ------------------------------------------------------------------------------------------

_RAW_STR = re.compile(r'b?r(#*)"')


def blank(src: str) -> str:
    """`src` with comments, string and char literals replaced by spaces (newlines kept)."""
    out = list(src)
    n = len(src)
    i = 0

    def wipe(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j)
            i = j
        elif c in "rb" and (m := _RAW_STR.match(src, i)) and (i == 0 or not _ident_char(src[i - 1])):
            # A raw string: r"..", r#".."#, br"..".
            close = '"' + m.group(1)
            j = src.find(close, m.end())
            j = n if j < 0 else j + len(close)
            wipe(i, j)
            i = j
        elif c == '"':
            j = _end_of_string(src, i + 1)
            wipe(i, j)
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a): only the first is blanked.
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", src[i : i + 14])
            if m:
                wipe(i, i + m.end())
                i += m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def _ident_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _end_of_string(src: str, i: int) -> int:
    """Index just past the closing quote of a string whose body starts at `i`."""
    n = len(src)
    while i < n:
        if src[i] == "\\":
            i += 2
        elif src[i] == '"':
            return i + 1
        else:
            i += 1
    return n


_TOKEN = re.compile(r"(?P<ident>(?:r#)?[A-Za-z_][A-Za-z0-9_]*)|(?P<path>::)|(?P<punct>[{}();,*#!\[\]<>=])|(?P<ws>\s+)|(?P<other>.)", re.S)


@dataclass
class Tok:
    kind: str  # "ident", "::", or the punctuation character, or "other"
    text: str
    line: int


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    line = 1
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        s = m.group(0)
        if kind == "ws":
            line += s.count("\n")
            continue
        if kind == "ident":
            toks.append(Tok("ident", s[2:] if s.startswith("r#") else s, line))
        elif kind == "path":
            toks.append(Tok("::", s, line))
        elif kind == "punct":
            toks.append(Tok(s, s, line))
        else:
            toks.append(Tok("other", s, line))
    return toks


# ------------------------------------------------------------------------------------------
# Test code: every item under #[cfg(test)] is dropped before parsing.
# ------------------------------------------------------------------------------------------


def _is_cfg_test(toks: list[Tok], i: int) -> int:
    """If toks[i:] is `# [ cfg ( test ) ]`, the index after it; else -1."""
    want = ["#", "[", "cfg", "(", "test", ")", "]"]
    if i + len(want) > len(toks):
        return -1
    for k, w in enumerate(want):
        if toks[i + k].text != w:
            return -1
    return i + len(want)


def _skip_attrs(toks: list[Tok], i: int) -> int:
    """Skips outer attributes `#[..]` starting at `i`."""
    while i + 1 < len(toks) and toks[i].kind == "#" and toks[i + 1].kind == "[":
        depth, i = 0, i + 1
        while i < len(toks):
            if toks[i].kind == "[":
                depth += 1
            elif toks[i].kind == "]":
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            i += 1
    return i


def drop_test_items(toks: list[Tok]) -> tuple[list[Tok], list[str]]:
    """Removes items under `#[cfg(test)]`; returns the rest and the names of test-only
    out-of-line modules (`#[cfg(test)] mod x;`)."""
    out: list[Tok] = []
    test_mods: list[str] = []
    i = 0
    while i < len(toks):
        j = _is_cfg_test(toks, i)
        if j < 0:
            out.append(toks[i])
            i += 1
            continue
        j = _skip_attrs(toks, j)
        start = j
        # Visibility, then the item's keyword.
        k = j
        if k < len(toks) and toks[k].text == "pub":
            k += 1
            if k < len(toks) and toks[k].kind == "(":
                while k < len(toks) and toks[k].kind != ")":
                    k += 1
                k += 1
        is_use = k < len(toks) and toks[k].text == "use"
        if k + 2 < len(toks) and toks[k].text == "mod" and toks[k + 2].kind == ";":
            test_mods.append(toks[k + 1].text)
        # The item ends at a `;` outside brackets, or (not for a `use`) at its closing brace.
        depth = 0
        j = start
        while j < len(toks):
            t = toks[j].kind
            if t in "{([":
                depth += 1
            elif t in "})]":
                depth -= 1
                if t == "}" and depth == 0 and not is_use:
                    j += 1
                    break
            elif t == ";" and depth == 0:
                j += 1
                break
            j += 1
        i = j
    return out, test_mods


# ------------------------------------------------------------------------------------------
# Parsing one file: modules, item definitions, uses, paths in code.
# ------------------------------------------------------------------------------------------

Path_ = tuple[str, ...]


@dataclass
class Use:
    """One leaf of a `use` tree: `segs` as written (not yet resolved)."""

    module: Path_  # the module the `use` is in
    segs: list[str]
    glob: bool
    alias: str | None  # the name it binds (None for globs)
    line: int
    top_level: bool  # directly in a module (so it can be re-exported or used by children)


@dataclass
class CodePath:
    module: Path_
    segs: list[str]
    line: int


@dataclass
class FileInfo:
    path: Path  # relative to the source dir
    module: Path_
    uses: list[Use] = field(default_factory=list)
    code_paths: list[CodePath] = field(default_factory=list)
    test_mods: list[str] = field(default_factory=list)
    test_only: bool = False


ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}


class Crate:
    def __init__(self) -> None:
        self.files: dict[Path, FileInfo] = {}
        self.module_file: dict[Path_, Path] = {}  # every module (file or inline) -> its file
        self.children: dict[Path_, set[str]] = defaultdict(set)  # submodule names
        self.defined: dict[Path_, set[str]] = defaultdict(set)  # items defined at top level
        # Names bound by top-level `use`s: module -> name -> absolute path; and glob sources.
        self.imports: dict[Path_, dict[str, list[str]]] = defaultdict(dict)
        self.globs: dict[Path_, list[list[str]]] = defaultdict(list)
        # Names bound by `use`s inside functions and blocks, for the paths in code there.
        self.local_aliases: dict[Path_, dict[str, list[str]]] = defaultdict(dict)


def module_of(rel: Path) -> Path_:
    parts = list(rel.with_suffix("").parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def parse_use_tree(toks: list[Tok], i: int, prefix: list[str]) -> tuple[list[tuple[list[str], bool, str | None]], int]:
    """Parses a use tree at toks[i]; returns its leaves (segments, glob, alias) and the index
    after the tree."""
    segs = list(prefix)
    leaves: list[tuple[list[str], bool, str | None]] = []
    if i < len(toks) and toks[i].kind == "::":  # leading `::`: an external crate
        segs.append("::")
        i += 1
    while i < len(toks):
        t = toks[i]
        if t.kind == "ident":
            segs.append(t.text)
            i += 1
            if i < len(toks) and toks[i].kind == "::":
                i += 1
                continue
            alias = segs[-1]
            if i + 1 < len(toks) and toks[i].text == "as":
                alias = toks[i + 1].text
                i += 2
            if segs[-1] == "self":  # `a::{self}`: the module itself
                segs = segs[:-1]
                if alias == "self":
                    alias = segs[-1] if segs else None
            leaves.append((segs, False, alias))
            return leaves, i
        if t.kind == "*":
            leaves.append((segs, True, None))
            return leaves, i + 1
        if t.kind == "{":
            i += 1
            while i < len(toks) and toks[i].kind != "}":
                sub, i = parse_use_tree(toks, i, segs)
                leaves.extend(sub)
                if i < len(toks) and toks[i].kind == ",":
                    i += 1
            return leaves, i + 1
        break
    return leaves, i


def parse_file(crate: Crate, src_dir: Path, rel: Path) -> FileInfo:
    text = (src_dir / rel).read_text(encoding="utf-8", errors="replace")
    info = FileInfo(rel, module_of(rel))
    stripped = blank(text)
    if re.search(r"#!\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", stripped):
        info.test_only = True
    toks, info.test_mods = drop_test_items(tokenize(stripped))
    # Brace stack: ("mod", name) for inline modules, ("block", None) for everything else.
    stack: list[tuple[str, str | None]] = []

    def current() -> Path_:
        return info.module + tuple(name for kind, name in stack if kind == "mod")

    def at_module_level() -> bool:
        return not stack or stack[-1][0] == "mod"

    crate.module_file.setdefault(info.module, rel)
    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        if t.kind == "{":
            if i >= 2 and toks[i - 2].text == "mod" and toks[i - 1].kind == "ident":
                name = toks[i - 1].text
                stack.append(("mod", name))
                crate.children[current()[:-1]].add(name)
                crate.module_file.setdefault(current(), rel)
            else:
                stack.append(("block", None))
            i += 1
            continue
        if t.kind == "}":
            if stack:
                stack.pop()
            i += 1
            continue
        if t.kind != "ident":
            i += 1
            continue
        word = t.text
        prev = toks[i - 1] if i else None
        if word == "mod" and i + 2 < n and toks[i + 1].kind == "ident" and toks[i + 2].kind == ";":
            crate.children[current()].add(toks[i + 1].text)
            i += 3
            continue
        if word == "pub" and i + 2 < n and toks[i + 1].kind == "(" and toks[i + 2].text == "in":
            # `pub(in a::b)` names a module for visibility, not a dependency.
            while i < n and toks[i].kind != ")":
                i += 1
            continue
        if word == "use" and (prev is None or prev.kind in (";", "{", "}", ")", "]") or prev.text in ("pub",)):
            leaves, j = parse_use_tree(toks, i + 1, [])
            module = current()
            for segs, glob, alias in leaves:
                info.uses.append(Use(module, segs, glob, alias, t.line, at_module_level()))
            while j < n and toks[j].kind != ";":
                j += 1
            i = j + 1
            continue
        if at_module_level():
            if word in ITEM_KEYWORDS and i + 1 < n and toks[i + 1].kind == "ident" and toks[i + 1].text not in ITEM_KEYWORDS:
                crate.defined[current()].add(toks[i + 1].text)
            elif word == "macro_rules" and i + 2 < n and toks[i + 1].kind == "!" and toks[i + 2].kind == "ident":
                crate.defined[current()].add(toks[i + 2].text)
        # A path in code: IDENT (:: IDENT)+, not itself the tail of a longer path.
        if i + 2 < n and toks[i + 1].kind == "::" and (prev is None or prev.kind != "::"):
            segs = [word]
            j = i + 1
            while j + 1 < n and toks[j].kind == "::" and toks[j + 1].kind == "ident":
                segs.append(toks[j + 1].text)
                j += 2
            if len(segs) > 1:
                info.code_paths.append(CodePath(current(), segs, t.line))
            i = j
            continue
        i += 1
    return info


# ------------------------------------------------------------------------------------------
# Resolution.
# ------------------------------------------------------------------------------------------


def absolute(crate: Crate, module: Path_, segs: list[str], code: bool) -> list[str] | None:
    """`segs` as an absolute path from the crate root, or None when it leaves the crate (std,
    external crates, local names)."""
    if not segs or segs[0] == "::":
        return None
    head = segs[0]
    if head == "crate":
        return segs[1:]
    if head == "self":
        return list(module) + segs[1:]
    if head == "super":
        base = list(module)
        k = 0
        while k < len(segs) and segs[k] == "super":
            if not base:
                return None
            base.pop()
            k += 1
        if k < len(segs) and segs[k] == "self":
            k += 1
        return base + segs[k:]
    # A relative path: a child module of this module, or a name a `use` here bound.
    if head in crate.children.get(module, ()):
        return list(module) + segs
    bound = crate.imports.get(module, {}).get(head)
    if bound is None and code:
        bound = crate.local_aliases.get(module, {}).get(head)
    if bound is not None:
        return bound + segs[1:]
    return None


def split_module(crate: Crate, path: list[str]) -> tuple[Path_, list[str]]:
    """The longest prefix of `path` that names a module, and the rest."""
    for k in range(len(path), -1, -1):
        if tuple(path[:k]) in crate.module_file:
            return tuple(path[:k]), path[k:]
    return (), path


def target(crate: Crate, path: list[str], seen: frozenset = frozenset()) -> tuple[Path, str] | None:
    """The file that defines what `path` (absolute) names, and the name that ties it."""
    module, rest = split_module(crate, path)
    if module not in crate.module_file:
        return None
    here = crate.module_file[module]
    if not rest:
        return here, (module[-1] if module else "crate")
    name = rest[0]
    key = (module, name)
    if name in crate.defined.get(module, ()) or key in seen:
        return here, name
    seen = seen | {key}
    bound = crate.imports.get(module, {}).get(name)
    if bound is not None:
        found = target(crate, bound + rest[1:], seen)
        return found if found is not None else (here, name)
    for g in crate.globs.get(module, []):
        gm, grest = split_module(crate, g)
        if grest:
            continue
        if name in crate.defined.get(gm, ()) or name in crate.imports.get(gm, {}) or name in crate.children.get(gm, ()):
            found = target(crate, g + rest, seen)
            if found is not None:
                return found
    return here, name


# ------------------------------------------------------------------------------------------
# The graph and its circles.
# ------------------------------------------------------------------------------------------


def load(src_dir: Path) -> tuple[Crate, dict[tuple[Path, Path], set[str]]]:
    crate = Crate()
    for p in sorted(src_dir.rglob("*.rs")):
        rel = p.relative_to(src_dir)
        if rel.parts[0] == "bin" or rel.as_posix() == "main.rs" and (src_dir / "lib.rs").exists():
            continue  # binaries are crates of their own
        crate.files[rel] = parse_file(crate, src_dir, rel)
    # Test-only files: `#![cfg(test)]`, or declared by `#[cfg(test)] mod x;`.
    test_modules = {info.module + (m,) for info in crate.files.values() for m in info.test_mods}
    for info in crate.files.values():
        if info.module in test_modules or any(info.module[: len(t)] == t for t in test_modules):
            info.test_only = True
    live = {rel: info for rel, info in crate.files.items() if not info.test_only}
    # First the names every top-level `use` binds (for re-exports and relative paths).
    for info in live.values():
        for u in info.uses:
            path = absolute(crate, u.module, u.segs, code=False)
            if path is None:
                continue
            if not u.top_level:
                if u.alias and u.alias != "_":
                    crate.local_aliases[u.module][u.alias] = path
            elif u.glob:
                crate.globs[u.module].append(path)
            elif u.alias and u.alias != "_":
                crate.imports[u.module][u.alias] = path
    edges: dict[tuple[Path, Path], set[str]] = defaultdict(set)

    def add(frm: Path, path: list[str] | None, glob: bool) -> None:
        if path is None:
            return
        module, rest = split_module(crate, path)
        if not rest and not glob:
            # `use super::pool;` only names the module: the paths through it (`pool::spawn`)
            # are the uses, each resolved on its own.
            return
        found = target(crate, path, frozenset())
        if found is None:
            return
        to, name = found
        if glob and not rest:
            name = "*"
        if to != frm and to in live:
            edges[(frm, to)].add(name)

    for rel, info in live.items():
        for u in info.uses:
            add(rel, absolute(crate, u.module, u.segs, code=False), u.glob)
        for cp in info.code_paths:
            if cp.segs[0] in ("Self",):
                continue
            add(rel, absolute(crate, cp.module, cp.segs, code=True), False)
    return crate, edges


def tarjan(nodes: list[Path], succ: dict[Path, list[Path]]) -> list[list[Path]]:
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    on: set[Path] = set()
    stack: list[Path] = []
    comps: list[list[Path]] = []
    counter = [0]

    def visit(v: Path) -> None:
        # Iterative, so that deep graphs do not hit the recursion limit.
        work = [(v, iter(succ.get(v, [])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(succ.get(w, []))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                comps.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return comps


def shortest_path(succ: dict[Path, list[Path]], inside: set[Path], a: Path, b: Path) -> list[Path] | None:
    """Shortest path a -> b within `inside` (breadth first)."""
    prev: dict[Path, Path | None] = {a: None}
    q = deque([a])
    while q:
        v = q.popleft()
        if v == b:
            path = [v]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return path[::-1]
        for w in succ.get(v, []):
            if w in inside and w not in prev:
                prev[w] = v
                q.append(w)
    return None


def circles(edges: dict[tuple[Path, Path], set[str]]) -> list[tuple[list[Path], list[list[Path]]]]:
    """Each component of more than one file, with the shortest circle through each of its
    edges (deduplicated)."""
    succ: dict[Path, list[Path]] = defaultdict(list)
    nodes: set[Path] = set()
    for a, b in sorted(edges):
        succ[a].append(b)
        nodes.update((a, b))
    out = []
    for comp in tarjan(sorted(nodes), succ):
        if len(comp) < 2:
            continue
        inside = set(comp)
        seen: set[tuple[Path, ...]] = set()
        cycles: list[list[Path]] = []
        for a in comp:
            for b in succ[a]:
                if b not in inside:
                    continue
                back = shortest_path(succ, inside, b, a)
                if back is None:
                    continue
                cyc = [a] + back[:-1]
                k = cyc.index(min(cyc))
                norm = tuple(cyc[k:] + cyc[:k])
                if norm not in seen:
                    seen.add(norm)
                    cycles.append(list(norm))
        cycles.sort(key=lambda c: (len(c), c))
        out.append((comp, cycles))
    return out


def report(src_dir: Path, label: str | None = None) -> tuple[int, str]:
    crate, edges = load(src_dir)
    label = label or str(src_dir)
    found = circles(edges)
    live = [r for r, i in crate.files.items() if not i.test_only]
    lines = []

    def name(p: Path) -> str:
        return f"{label}/{p.as_posix()}"

    for k, (comp, cycles) in enumerate(found, 1):
        inside = set(comp)
        lines.append(f"circle {k}: {len(comp)} files tied together")
        lines.append("  the imports that tie them (file -> file: names):")
        for (a, b), names in sorted(edges.items()):
            if a in inside and b in inside:
                lines.append(f"    {name(a)} -> {name(b)}: {', '.join(sorted(names))}")
        lines.append("  the shortest circle through each of those imports:")
        for cyc in cycles:
            lines.append("    " + " -> ".join(name(p) for p in cyc + cyc[:1]))
    if found:
        lines.append(f"{len(found)} circle(s) among {len(live)} files ({len(edges)} file-to-file edges)")
    else:
        lines.append(f"no circles among {len(live)} files ({len(edges)} file-to-file edges)")
    return (1 if found else 0), "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Self-test: throwaway trees with known verdicts.
# ------------------------------------------------------------------------------------------

SELF_TESTS: list[tuple[str, dict[str, str], list[set[str]]]] = [
    (
        "a tree without circles",
        {
            "lib.rs": "mod a;\nmod b;\npub use a::A;\n",
            "a.rs": "use crate::b::B;\npub struct A(B);\n",
            "b.rs": "pub struct B;\n",
        },
        [],
    ),
    (
        "two files using each other",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b::B;\npub struct A;\n",
            "b.rs": "use crate::a::A;\npub struct B;\n",
        },
        [{"a.rs", "b.rs"}],
    ),
    (
        "nested braces, `as`, globs, `self`, several lines",
        {
            "lib.rs": "mod a;\nmod b;\nmod c;\n",
            "a.rs": "pub(crate) use crate::{\n    b::{self as bee, B as Bee},\n    c::*,\n};\npub struct A;\n",
            "b.rs": "pub struct B;\n",
            "c.rs": "use super::a::{A};\npub struct C;\n",
        },
        [{"a.rs", "c.rs"}],
    ),
    (
        "a child using its parent, and the parent using the child",
        {
            "lib.rs": "mod d;\n",
            "d/mod.rs": "mod c;\npub(crate) use c::C;\npub(crate) fn helper() {}\n",
            "d/c.rs": "use super::helper;\npub struct C;\n",
        },
        [{"d/mod.rs", "d/c.rs"}],
    ),
    (
        "a child using its parent that only declares it: no circle",
        {
            "lib.rs": "mod d;\n",
            "d/mod.rs": "mod c;\npub(crate) fn helper() {}\n",
            "d/c.rs": "pub fn f() { super::helper() }\n",
        },
        [],
    ),
    (
        "test code, comments and strings do not count",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": (
                "use crate::b::B;\npub struct A;\n"
                "#[cfg(test)]\nmod tests {\n    use crate::b::B;\n    use super::*;\n}\n"
            ),
            "b.rs": (
                "// use crate::a::A;\n/* crate::a::A /* nested */ */\n"
                "const S: &str = \"crate::a::A\";\nconst R: &str = r#\"use crate::a::A;\"#;\n"
                "#[cfg(test)]\nuse crate::a::A;\n#[cfg(test)]\nfn t() { crate::a::A; }\npub struct B;\n"
            ),
        },
        [],
    ),
    (
        "a test-only file declared by #[cfg(test)] mod x;",
        {
            "lib.rs": "mod a;\n#[cfg(test)]\nmod testing;\n",
            "a.rs": "pub fn f() {}\n",
            "testing.rs": "use crate::a::f;\n",
        },
        [],
    ),
    (
        "paths in code, through a re-export at the root",
        {
            "lib.rs": "mod error;\nmod a;\npub use error::Error;\n",
            "error.rs": "pub struct Error;\nimpl Error { fn f() { let _ = crate::a::helper(); } }\n",
            "a.rs": "pub(crate) fn helper() -> crate::Error { crate::Error }\n",
        },
        [{"error.rs", "a.rs"}],
    ),
    (
        "a name bound to a module by `use`, then used in code; a circle of three",
        {
            "lib.rs": "mod x;\nmod y;\nmod z;\n",
            "x.rs": "use crate::y;\npub fn fx() { y::fy() }\n",
            "y.rs": "pub fn fy() { crate::z::fz() }\n",
            "z.rs": "pub fn fz() { super::x::fx() }\n",
        },
        [{"x.rs", "y.rs", "z.rs"}],
    ),
    (
        "importing a module names it only: the paths through it are the uses",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b;\npub fn fa() {}\n",
            "b.rs": "use crate::a;\npub fn fb() { a::fa() }\n",
        },
        [],
    ),
    (
        "a `use` inside a function, then a path through it",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "pub fn fa() {\n    use crate::b;\n    b::fb()\n}\n",
            "b.rs": "pub fn fb() {}\npub fn g() { crate::a::fa() }\n",
        },
        [{"a.rs", "b.rs"}],
    ),
    (
        "an inline module's `super` is its file's module",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "pub struct A;\nmod inner {\n    use super::A;\n    pub fn g() { crate::b::f() }\n}\n",
            "b.rs": "pub fn f() {}\n",
        },
        [],
    ),
]


def self_test() -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="module_cycles.") as tmp:
        for k, (what, files, want) in enumerate(SELF_TESTS):
            root = Path(tmp) / f"t{k}"
            for rel, body in files.items():
                p = root / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(body, encoding="utf-8")
            _, edges = load(root)
            got = [{p.as_posix() for p in comp} for comp, _ in circles(edges)]
            status, _ = report(root)
            ok = sorted(map(sorted, got)) == sorted(map(sorted, want)) and status == (1 if want else 0)
            print(f"{'ok  ' if ok else 'FAIL'} {what}: circles {sorted(map(sorted, got))}")
            if not ok:
                failures += 1
                print(f"     wanted {sorted(map(sorted, want))}; edges:")
                for (a, b), names in sorted(edges.items()):
                    print(f"       {a} -> {b}: {sorted(names)}")
    print(f"self-test: {len(SELF_TESTS) - failures} of {len(SELF_TESTS)} passed")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if len(argv) == 2:
        src = Path(argv[1])
        label = argv[1].rstrip("/")
    else:
        src = Path(__file__).resolve().parent.parent / "src"
        label = "src"
    if not src.is_dir():
        print(f"module_cycles: no such directory: {src}", file=sys.stderr)
        return 2
    status, text = report(src, label)
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
