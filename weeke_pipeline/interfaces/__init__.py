"""Thin nipype interfaces around the package's pure functions."""
