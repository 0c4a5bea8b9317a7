"""Serving fast paths, each behind ``modelyard.fast_paths`` (its switch and version gate)."""
