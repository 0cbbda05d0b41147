"""Build hook: the top-level ``flink-sql/`` folder ships as the package ``upbitpipe.flink.sql``.

Everything else about the build lives in pyproject.toml; this file only adds the one package
whose directory lies outside ``src/`` (``package-dir`` in pyproject.toml maps it).
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages("src"), "upbitpipe.flink.sql"])
