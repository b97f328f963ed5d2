"""``python -m benchmarks.samples SET``: the samples command (``top5hub.cli.samples``, installed as
``top5-samples``) run from a clone, as the README and older notes name it."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from top5hub.cli.samples import main

if __name__ == "__main__":
    sys.exit(main())
