#!/usr/bin/env python
"""Train a BAL OOD detector end to end. See `python train.py --help`."""

import sys

from bal_tf.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
