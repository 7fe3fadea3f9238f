"""Exit 0 when every requirement in the given file is installed, else 1.

Lets install-deps.sh skip pip entirely (and print nothing) on a machine that
already has everything.
"""
import sys
from importlib import metadata

import re


def satisfied(line: str) -> bool:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(?:(==|>=)\s*([0-9][^\s;#]*))?", line)
    if not m:
        return True
    name, _, op, want = m.groups()
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    if not op:
        return True
    def key(v):
        return [int(x) if x.isdigit() else 0 for x in re.split(r"[.+-]", v)]
    return have == want if op == "==" else key(have) >= key(want)


def main() -> int:
    with open(sys.argv[1]) as f:
        lines = [l.split("#", 1)[0].strip() for l in f]
    return 0 if all(satisfied(l) for l in lines if l) else 1


if __name__ == "__main__":
    sys.exit(main())
