"""The main window's docks: alerts and the audit log."""
