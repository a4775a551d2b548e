"""Imported by `digitprep build`'s worker server alone, last in its preload list (digitprep.workers).

The server lives until the main process ends, then leaves through the interpreter's normal exit,
which tears down NumPy and OpenCV: 65 ms during which it still holds the command's standard output
and error, so a pipeline reading them (``digitprep build ... 2>&1 | tee log``) waits for it. Its
work is done by then (the workers are its children and have exited), so it ends at once instead.
Workers forked from it inherit the exit hook but never run it: they leave through ``os._exit``.
"""

import atexit
import os

atexit.register(os._exit, 0)
