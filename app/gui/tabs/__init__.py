"""The selected kit's tabs in the lower pane and what they show."""
