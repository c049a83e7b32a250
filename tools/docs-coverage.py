#!/usr/bin/env python3
"""Checks that a rewrite of README.md lost nothing: every line of the old README
(at git REF) that holds a figure, a table row or a command is in README.md or
docs/*.md verbatim (link targets rebased for docs/); for the lines that were
reworded, every number in them must still occur in README.md or docs/.
Usage: python3 tools/docs-coverage.py REF   (run from the repository root)"""
import glob, re, subprocess, sys

ref = sys.argv[1]
old = subprocess.run(['git', 'show', f'{ref}:README.md'], capture_output=True, text=True, check=True).stdout
new = ''.join(open(p).read() for p in ['README.md', *sorted(glob.glob('docs/*.md'))])
norm = lambda s: ' '.join(s.replace('](docs/', '](').replace('](../native/', '](native/').split())
flat = norm(new) + '\n' + '\n'.join(norm(l) for l in new.split('\n'))
numbers = set(re.findall(r'\d+(?:\.\d+)?', new))

reworded, lost = [], []
for i, line in enumerate(old.split('\n'), 1):
    s = norm(line)
    if not s or not (re.search(r'\d', s) or s.startswith('|') or s.startswith('npm ') or s.startswith('node ')):
        continue
    if s in flat:
        continue
    missing = [n for n in re.findall(r'\d+(?:\.\d+)?', s) if n not in numbers]
    (lost if missing else reworded).append((i, line.strip(), missing))
for i, l, _ in reworded:
    print(f'reworded, numbers kept  {i}: {l}')
for i, l, m in lost:
    print(f'LOST {m}  {i}: {l}')
print(f'{len(reworded)} reworded, {len(lost)} lost')
sys.exit(1 if lost else 0)
