"""The repository's vendored MNIST (data/mnist/*.gz, IDX format) as float32 arrays in [0, 1]."""
import gzip
import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist")


def _idx(name, offset):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load():
    """(x_train [60000, 784], y_train [60000], x_test [10000, 784], y_test [10000])."""
    x_train = _idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255.0
    y_train = _idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    x_test = _idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255.0
    y_test = _idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return x_train, y_train, x_test, y_test


def peak_rss_mb():
    """Peak resident memory of this process so far (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
