"""Unit tests of the embedded authorization engine."""
