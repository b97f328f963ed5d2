#!/usr/bin/env python3
"""Accuracy of one or more models on a labelled folder of images.

The command lives in the package (`top5hub.cli.validate`, installed as `top5-validate`); this file runs it
from a clone without installing anything. `python3 validate.py --help` lists its options.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from top5hub.cli.validate import main

if __name__ == "__main__":
    sys.exit(main())
