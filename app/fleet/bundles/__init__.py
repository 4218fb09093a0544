"""Bundles in (issue 22), the laptop's side: per-kit sequence numbers and which signing key each
kit trusts (`ledger.py`), building a signed bundle (`create.py`), rotating the signing key
(`rotation.py`)."""
