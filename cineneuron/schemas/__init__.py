"""Data definitions shared by every package: light, no torch."""
