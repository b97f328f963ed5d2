#!/usr/bin/env python3
"""A local web page and JSON API for the classifiers: drop photos, compare models, see where they looked.

The command lives in the package (`top5hub.cli.serve`, installed as `top5-serve`); this file runs it
from a clone without installing anything. `python3 serve.py --help` lists its options.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from top5hub.cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
