"""BENCHMARKS.md is written by several scripts: bench/run.py owns the top (title, ratio table,
compile times, RSS), and each other script owns one "## " section. replace_section swaps one
section in place (or appends it) and keeps the others."""
import os


def split_sections(text):
    """(head before the first '## ' heading, {heading line: section text}) in file order."""
    head, sections, cur = [], {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            cur = line.strip()
            sections[cur] = ""
        if cur is None:
            head.append(line)
        else:
            sections[cur] += line
    return "".join(head), sections


def replace_section(path, text):
    """Writes `text` (starting with its '## ' heading) into BENCHMARKS.md at `path`."""
    old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    head, sections = split_sections(old)
    heading = text.splitlines()[0].strip()
    key = next((h for h in sections if h.split(":")[0] == heading.split(":")[0]), None)
    sections[key or heading] = text
    if key and key != heading:
        sections = {(heading if h == key else h): v for h, v in sections.items()}
    body = head.rstrip("\n") + "\n\n" + "\n".join(v.rstrip("\n") + "\n" for v in sections.values())
    with open(path, "w") as f:
        f.write(body)


def keep_sections(path, new_head):
    """new_head replaces the top of BENCHMARKS.md; the '## ' sections already there stay."""
    old = open(path).read() if os.path.exists(path) else ""
    _, sections = split_sections(old)
    with open(path, "w") as f:
        f.write(new_head.rstrip("\n") + "\n" + "".join("\n" + v.rstrip("\n") + "\n" for v in sections.values()))


def emit(text, write, root):
    """Prints a section; with `write`, also puts it into root/BENCHMARKS.md."""
    import sys
    print(text)
    if write:
        path = os.path.join(root, "BENCHMARKS.md")
        replace_section(path, text)
        print(f"wrote {path}", file=sys.stderr)
