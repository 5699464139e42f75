#!/usr/bin/env python3
"""Checks every link and image reference in the project's markdown: README.md, BENCHMARKS.md and
docs/**/*.md.

    check_links.py [REPO_ROOT]      (default: two folders above this script)

For each `[text](target)` and `![alt](target)` outside code (fenced blocks and `inline code`):
- http://, https:// and mailto: targets are skipped (nothing is fetched);
- a relative path is resolved against the folder of the file that holds the link (a path starting
  with / against the repository root, as GitHub does) and must exist inside the repository;
- `file.md#anchor` and `#anchor` must name a heading of that file, as GitHub spells heading anchors:
  lowercase, punctuation other than - and _ dropped, spaces turned into -, and -1, -2, ... appended
  to repeated headings.

Prints `file:line: broken link 'target' (reason)` for each broken link, then `N passed, M failed`,
and exits 1 when any link is broken (2 when REPO_ROOT is not a folder). Python 3 standard library only.
"""
import os
import re
import sys
import unicodedata
from urllib.parse import unquote

SKIPPED_SCHEMES = ("http://", "https://", "mailto:")

# [text](target) or ![alt](target), with an optional title: [t](path "title"). The text may hold
# one level of nested brackets ([`a[0]`](x)); the target is either <...> or has no spaces.
LINK = re.compile(r'!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"\n]*"|\'[^\'\n]*\'))?\s*\)')
FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})')
HEADING = re.compile(r'^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$')
HTML_ANCHOR = re.compile(r'<a\s+(?:name|id)\s*=\s*"([^"]+)"', re.IGNORECASE)


def strip_code_spans(line):
    """The line with `inline code` blanked out (same length, so columns stay put)."""
    out, i = [], 0
    while i < len(line):
        if line[i] == '`':
            n = len(line) - len(line[i:].lstrip('`'))
            ticks = line[i:i + n]
            end = line.find(ticks, i + n)
            if end < 0:
                out.append(line[i:i + n])
                i += n
                continue
            out.append(' ' * (end + n - i))
            i = end + n
        else:
            out.append(line[i])
            i += 1
    return ''.join(out)


def outside_fences(text):
    """(line number, line) for each line outside fenced code blocks (``` or ~~~)."""
    fence = None
    for num, line in enumerate(text.split('\n'), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield num, line


def prose_lines(text):
    """(line number, line) for each line outside code blocks, with inline code blanked out."""
    for num, line in outside_fences(text):
        yield num, strip_code_spans(line)


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r'!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)', r'\1', heading)  # links: their text
    text = re.sub(r'<[^>]+>', '', text)  # inline HTML tags
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in ' -' or cat[0] in 'LMN' or cat == 'Pc':
            kept.append(ch)
    return ''.join(kept).replace(' ', '-')


def anchors_of(path, cache):
    if path not in cache:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        found, seen = set(), {}
        for _, line in outside_fences(text):
            h = HEADING.match(line)
            if h:
                base = slug(h.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else '%s-%d' % (base, n))
            for a in HTML_ANCHOR.findall(line):
                found.add(a)
        cache[path] = found
    return cache[path]


def markdown_files(root):
    files = [os.path.join(root, name) for name in ('README.md', 'BENCHMARKS.md')]
    for folder, dirs, names in os.walk(os.path.join(root, 'docs')):
        dirs.sort()
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith('.md')]
    return [f for f in files if os.path.isfile(f)]


def check_target(root, source, target, anchor_cache):
    """None when the link resolves, else the reason it does not."""
    if target.startswith('<') and target.endswith('>'):
        target = target[1:-1]
    if not target:
        return 'empty target'
    if target.lower().startswith(SKIPPED_SCHEMES):
        return None
    if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', target):
        return 'unsupported scheme (only http, https and mailto are external)'
    path_part, _, anchor = target.partition('#')
    path_part = unquote(path_part.split('?')[0])
    if path_part == '':
        dest = source
    elif path_part.startswith('/'):
        dest = os.path.normpath(os.path.join(root, path_part.lstrip('/')))
    else:
        dest = os.path.normpath(os.path.join(os.path.dirname(source), path_part))
    rel = os.path.relpath(dest, root)
    if rel == '..' or rel.startswith('..' + os.sep):
        return 'points outside the repository'
    if not os.path.exists(dest):
        return 'no such file: %s' % rel
    if anchor:
        if os.path.isdir(dest):
            return 'anchor on a folder'
        if dest.endswith('.md'):
            if unquote(anchor) not in anchors_of(dest, anchor_cache):
                return 'no heading #%s in %s' % (anchor, rel)
        elif not re.fullmatch(r'L\d+(-L\d+)?', anchor):
            return 'anchor #%s on a file that is not markdown' % anchor
    return None


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        print('check_links.py: %s is not a folder' % root, file=sys.stderr)
        return 2
    passed = failed = 0
    cache = {}
    for path in markdown_files(root):
        rel = os.path.relpath(path, root)
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for num, line in prose_lines(text):
            for m in LINK.finditer(line):
                target = m.group(2)
                reason = check_target(root, path, target, cache)
                if reason:
                    failed += 1
                    print("%s:%d: broken link '%s' (%s)" % (rel, num, target, reason))
                else:
                    passed += 1
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
