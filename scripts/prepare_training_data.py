#!/usr/bin/env python3
"""Write a compact synthetic training set (OTB layout) from registry media.

    python scripts/prepare_training_data.py work_dirs/synth --sequences 300 --frames 16 \
        --install-media --preview work_dirs/synth_preview.png

Same as `python -m siam_tracker_ros.train.synthetic ...`; see
siam_tracker_ros/train/synthetic.py for what the sequences contain.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from siam_tracker_ros.train.synthetic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
