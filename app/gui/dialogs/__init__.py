"""Dialogs and the questions the window asks, each replaceable in tests."""
