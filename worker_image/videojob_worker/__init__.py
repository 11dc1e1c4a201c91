"""The VideoJob worker: the program every stage pod of a VideoJob runs.

`videojob-worker <stage>` reads the operator-worker contract (docs/contract.md) from its
environment and runs one stage; `videojob-worker run` runs the whole pipeline locally.
"""

__version__ = "0.1.0"

import os

# stderr carries one JSON object per line; OpenCV's own warnings ("[ WARN:0@0.1] ...") would break
# that. Decoding problems surface as the worker's own errors instead. Must precede `import cv2`.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
