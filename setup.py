"""Build the optional compiled kNN kernel; all other metadata lives in pyproject.toml.

``ibhooks.estimators._knn_kernel`` (plain C in ``ibhooks/estimators/knn_kernel/``, no numpy headers)
makes the kNN estimators' CPU search several times faster. It is ``optional``: without a C compiler or
Python's headers the install still succeeds and the estimators use scipy's cKDTree instead (same values).
"""
from glob import glob

from setuptools import Extension, setup

KERNEL = "ibhooks/estimators/knn_kernel"

setup(ext_modules=[Extension("ibhooks.estimators._knn_kernel", sorted(glob(f"{KERNEL}/*.c")),
                             depends=sorted(glob(f"{KERNEL}/*.h")), include_dirs=[KERNEL],
                             extra_compile_args=["-O3"], optional=True)])
