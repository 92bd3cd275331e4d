#!/usr/bin/env python3
"""Checks that the code shown in twistlet's Markdown documentation is the code that CI builds.

It scans every Markdown file under docs/ and the repository's README.md.

Every program shown in the docs lives under docs/snippets/ and is compiled and run by CTest
(docs/CMakeLists.txt). The Markdown includes it by a marker on the line before a fenced block:

    <!-- snippet: tutorial_channels.cpp -->          the whole file
    <!-- snippet: tutorial_channels.cpp#send -->     the region "send" of the file

A region is delimited in the file by two lines that read exactly `// [send]` (any indentation).
Region marker lines (of any region) are never shown; a region is shown dedented. Any file in
docs/snippets/ can be included, e.g. a snippet's expected output:

    <!-- snippet: tutorial_channels.expected -->

This script fails if a marked block differs from its source, if a marker names a missing file or
region, if a marker is not followed by a fenced block, or if a region is not closed. With --fix
it rewrites the blocks from the sources (and inserts a block after a marker that has none).

Usage: scripts/check_docs.py [--root DIR] [--fix] [--verbose]
Standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import pathlib
import re
import sys

MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<file>[^#\s]+)(?:#(?P<region>[A-Za-z0-9_.-]+))?\s*-->\s*$")
REGION_LINE = re.compile(r"^\s*//\s*\[(?P<name>[A-Za-z0-9_.-]+)\]\s*$")
FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

LANGUAGES = {".cpp": "cpp", ".hpp": "cpp", ".cmake": "cmake", ".py": "python", ".sh": "sh"}


class DocError(Exception):
    pass


def dedent(lines: list[str]) -> list[str]:
    indents = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    cut = min(indents, default=0)
    return [l[cut:] if l.strip() else "" for l in lines]


def snippet_text(snippet_dir: pathlib.Path, name: str, region: str | None, cache: dict) -> str:
    """The text a marker stands for, ending with a newline (or empty)."""
    path = snippet_dir / name
    if path not in cache:
        if not path.is_file():
            raise DocError(f"no such snippet file: docs/snippets/{name}")
        cache[path] = path.read_text(encoding="utf-8").splitlines()
    lines = cache[path]
    if path.suffix not in (".cpp", ".hpp"):
        if region:
            raise DocError(f"docs/snippets/{name}: regions are only supported in C++ files")
        selected = lines
    else:
        # Check every region of the file is balanced, then select.
        counts: dict[str, int] = {}
        for l in lines:
            m = REGION_LINE.match(l)
            if m:
                counts[m["name"]] = counts.get(m["name"], 0) + 1
        for r, n in counts.items():
            if n != 2:
                raise DocError(f"docs/snippets/{name}: region [{r}] has {n} marker line(s); it needs exactly 2")
        if region:
            if region not in counts:
                raise DocError(f"docs/snippets/{name}: no region [{region}]")
            inside = False
            selected = []
            for l in lines:
                m = REGION_LINE.match(l)
                if m and m["name"] == region:
                    inside = not inside
                    continue
                if inside:
                    selected.append(l)
        else:
            selected = lines
        selected = dedent([l for l in selected if not REGION_LINE.match(l)])

    # No leading or trailing blank lines in a shown block.
    while selected and not selected[0].strip():
        selected.pop(0)
    while selected and not selected[-1].strip():
        selected.pop()
    return "".join(l.rstrip() + "\n" for l in selected)


def closes(line: str, fence: str) -> bool:
    s = line.strip()
    return len(s) >= len(fence) and set(s) == {fence[0]}


def fence_for(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    return "`" * max(3, longest + 1)


def process(md: pathlib.Path, root: pathlib.Path, snippet_dir: pathlib.Path, fix: bool, cache: dict,
            used: set) -> tuple[list[str], bool]:
    """Returns (problems, changed)."""
    rel = md.relative_to(root)
    lines = md.read_text(encoding="utf-8").splitlines(keepends=True)
    out: list[str] = []
    problems: list[str] = []
    changed = False
    i = 0
    in_fence: str | None = None
    while i < len(lines):
        line = lines[i]
        fence = FENCE_OPEN.match(line.rstrip("\n"))
        if in_fence:
            if closes(line, in_fence):
                in_fence = None
            out.append(line)
            i += 1
            continue
        if fence:
            in_fence = fence["fence"]
            out.append(line)
            i += 1
            continue
        m = MARKER.match(line)
        if not m:
            out.append(line)
            i += 1
            continue

        where = f"{rel}:{i + 1}"
        out.append(line)
        i += 1
        name, region = m["file"], m["region"]
        label = name + (f"#{region}" if region else "")
        try:
            want = snippet_text(snippet_dir, name, region, cache)
        except DocError as e:
            problems.append(f"{where}: {e}")
            continue
        used.add(name)

        # The fenced block must follow the marker directly.
        open_m = FENCE_OPEN.match(lines[i].rstrip("\n")) if i < len(lines) else None
        if not open_m:
            problems.append(f"{where}: the marker for {label} is not followed by a fenced code block")
            if fix:
                lang = LANGUAGES.get(pathlib.PurePath(name).suffix, "text")
                f = fence_for(want)
                out.append(f"{f}{lang}\n{want}{f}\n")
                changed = True
            continue
        fence_str = open_m["fence"]
        j = i + 1
        while j < len(lines):
            if closes(lines[j], fence_str):
                break
            j += 1
        if j >= len(lines):
            problems.append(f"{where}: the code block for {label} is never closed")
            out.extend(lines[i:])
            break
        have = "".join(l.rstrip("\n").rstrip() + "\n" for l in lines[i + 1:j])
        if have != want:
            diff = list(difflib.unified_diff(have.splitlines(), want.splitlines(), "shown", f"docs/snippets/{label}",
                                             lineterm="", n=1))
            shown = "\n".join("    " + d for d in diff[:24]) + ("\n    ..." if len(diff) > 24 else "")
            problems.append(f"{where}: the block differs from docs/snippets/{label}\n{shown}")
            if fix:
                f = fence_for(want)
                info = open_m["info"] or LANGUAGES.get(pathlib.PurePath(name).suffix, "text")
                out.append(f"{f}{info}\n{want}{f}\n")
                changed = True
                i = j + 1
                continue
        out.extend(lines[i:j + 1])
        i = j + 1

    if fix and changed:
        md.write_text("".join(out), encoding="utf-8")
    return problems, changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent, type=pathlib.Path,
                    help="the repository (default: this script's parent folder)")
    ap.add_argument("--fix", action="store_true", help="rewrite the marked blocks from the snippets")
    ap.add_argument("--verbose", action="store_true", help="also list snippets that no document shows")
    args = ap.parse_args()

    root = args.root.resolve()
    docs = root / "docs"
    snippet_dir = docs / "snippets"
    cache: dict = {}
    used: set = set()
    problems: list[str] = []
    fixed: list[str] = []
    markdown = sorted(docs.rglob("*.md"))
    if (root / "README.md").is_file():  # the front page shows a snippet too
        markdown.append(root / "README.md")
    for md in markdown:
        p, changed = process(md, root, snippet_dir, args.fix, cache, used)
        problems += p
        if changed:
            fixed.append(str(md.relative_to(root)))

    if args.verbose and snippet_dir.is_dir():
        for f in sorted(snippet_dir.glob("*.cpp")):
            if f.name not in used:
                print(f"note: docs/snippets/{f.name} is shown by no document")

    if args.fix:
        for f in fixed:
            print(f"rewrote {f}")
        # What --fix cannot repair: missing files or regions, unclosed blocks.
        unfixable = [p for p in problems if "differs" not in p and "not followed" not in p]
        for p in unfixable:
            print(p, file=sys.stderr)
        return 1 if unfixable else 0

    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        fixable = any("differs" in p or "not followed" in p for p in problems)
        hint = "; `scripts/check_docs.py --fix` rewrites the blocks from the snippets" if fixable else ""
        print(f"{len(problems)} problem(s){hint}", file=sys.stderr)
        return 1
    print(f"checked {len(markdown)} Markdown file(s): every snippet block matches its source")
    return 0


if __name__ == "__main__":
    sys.exit(main())
