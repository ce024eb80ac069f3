"""Thin nipype interfaces (``SimpleInterface``) around the package's pure functions."""
