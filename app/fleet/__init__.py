"""The app's Qt-free core: discovery, pinned API client, inventory and services.

The CLI and the desktop window both drive `Fleet`; nothing here imports Qt.
"""
