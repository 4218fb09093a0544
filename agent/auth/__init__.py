"""Who may call the agent: bearer tokens and the pairing that hands them out."""
