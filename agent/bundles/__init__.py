"""Bundles in (issue 22): who may sign them (`signers.py`), the import record and action journal
(`journal.py`), and applying a verified bundle through the same services as the API (`importer.py`,
`actions.py`)."""
