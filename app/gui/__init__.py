"""The PySide6 desktop window; Qt stays in this package."""
