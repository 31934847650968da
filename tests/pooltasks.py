"""Task functions for the worker-pool tests.

Workers import tasks by module name, so they live in a module on the test path,
not in a test file.
"""

import os
import signal
import time


def square(x):
    return x * x


def sleepy(seconds):
    time.sleep(seconds)
    return seconds


def busy_loop():
    while True:
        pass


def boom():
    raise ValueError("bad input")


def die():
    os.kill(os.getpid(), signal.SIGSEGV)


def hog():
    return bytearray(1 << 30)  # 1 GiB against a 256 MiB limit
