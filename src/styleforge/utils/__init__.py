"""Helpers every other package shares: files, downloads, signals, progress, size limits, caches."""
