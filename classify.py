#!/usr/bin/env python3
"""Classify images (files, folders, globs, URLs) and print or record their top-k classes.

The command lives in the package (`top5hub.cli.classify`, installed as `top5-classify`); this file runs it
from a clone without installing anything. `python3 classify.py --help` lists its options.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from top5hub.cli.classify import main

if __name__ == "__main__":
    sys.exit(main())
