#!/usr/bin/env python3
"""Writes the Agent Skills folder skills/cross-domain-sync/SKILL.md from skill.md.

skill.md (the seed's shape, at the repository root) is the one source: SKILL.md
is its body under the frontmatter the Agent Skills specification allows (name,
description, license, metadata), with the seed's name and version under
`metadata`. `--check` fails, naming the difference, when SKILL.md is not what
this would write (tests/run.sh runs it), so the two never drift; `.ci/run`
also runs the reference validator (`skills-ref validate`) on the folder.

Usage: python3 skills/make.py [--check]
"""
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
NAME = "cross-domain-sync"
MAX_LINES = 500


def frontmatter(text):
    if not text.startswith("---\n"):
        sys.exit("skill.md: no frontmatter")
    head, _, body = text[4:].partition("\n---\n")
    fields = {}
    for line in head.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    for key in ("name", "description", "version"):
        if not fields.get(key):
            sys.exit(f"skill.md: frontmatter has no `{key}`")
    return fields, body


def quoted(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def skill_folder_text():
    fields, body = frontmatter((root / "skill.md").read_text())
    lines = [
        "---",
        f"name: {NAME}",
        f"description: {quoted(fields['description'])}",
        "license: Apache-2.0",
        "metadata:",
        f"  seed-name: {quoted(fields['name'])}",
        f"  version: {quoted(fields['version'])}",
        "---",
        "",
        "<!-- Made by skills/make.py from skill.md; edit skill.md, then run it. -->",
    ]
    text = "\n".join(lines) + body
    if text.count("\n") >= MAX_LINES:
        sys.exit(f"SKILL.md would have {text.count(chr(10))} lines; the specification asks for under {MAX_LINES}")
    return text


def main():
    want = skill_folder_text()
    path = root / "skills" / NAME / "SKILL.md"
    if "--check" in sys.argv[1:]:
        have = path.read_text() if path.exists() else ""
        if have != want:
            for i, (a, b) in enumerate(zip(have.splitlines(), want.splitlines()), 1):
                if a != b:
                    sys.exit(f"{path}: line {i} differs from skill.md's; run `python3 skills/make.py`\n  have: {a}\n  want: {b}")
            sys.exit(f"{path} is stale (its length differs); run `python3 skills/make.py`")
        print(f"skills: {path.relative_to(root)} agrees with skill.md")
        return
    path.write_text(want)
    print(f"wrote {path.relative_to(root)}")


main()
