"""Periodic samples of CPU, memory, disk and temperature, kept in an on-disk ring."""
