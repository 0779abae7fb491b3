"""Build the optional compiled kNN kernel; all other metadata lives in pyproject.toml.

``ibhooks.estimators._knn_kernel`` (plain C, no numpy headers) makes the kNN estimators' CPU search
several times faster. It is ``optional``: without a C compiler or Python's headers the install still
succeeds and the estimators use scipy's cKDTree instead (same values).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("ibhooks.estimators._knn_kernel", ["ibhooks/estimators/_knn_kernel.c"],
                             extra_compile_args=["-O3"], optional=True)])
