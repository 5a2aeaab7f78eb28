"""Apply one small mutant to the library, run a test file, restore the file: does a test catch it?

    python tools/mutate.py damage/geo/zonal.py "/ grid.res**2" "/ grid.res" tests/test_zonal.py

OLD must occur exactly once in FILE. Prints KILLED (the tests failed, as they should) or SURVIVED.
The file is restored whatever happens.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="library file, relative to the repository root")
    ap.add_argument("old", help="the exact text to replace (once)")
    ap.add_argument("new", help="its replacement")
    ap.add_argument("tests", nargs="+", help="test files or node ids to run")
    args = ap.parse_args()
    path = ROOT / args.file
    source = path.read_text()
    if source.count(args.old) != 1:
        sys.exit(f"{args.file}: the text occurs {source.count(args.old)} times, not once")
    path.write_text(source.replace(args.old, args.new))
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args.tests], cwd=ROOT,
                             capture_output=True, text=True)
    finally:
        path.write_text(source)
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()[-200:]
    print(f"{'KILLED' if run.returncode else 'SURVIVED'}  {args.file}: {args.old!r} -> {args.new!r}  [{last}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
