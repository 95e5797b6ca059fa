"""Setuptools shim: all metadata lives in pyproject.toml (kept for tools that call setup.py)."""

from setuptools import setup

setup()
