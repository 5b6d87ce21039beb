"""`cn` with the test suite's toy encoders registered: `python tests/helpers/cn_toy.py ARGS...`.

Concurrency tests start several of these at once; toy encoders keep each one to start-up cost.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import conftest  # noqa: E402,F401 - registers the toy-* encoders

from cineneuron.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["cn", *sys.argv[1:]]
    main()
