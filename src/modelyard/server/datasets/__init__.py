"""``/v1/datasets``: upload a table as a stored dataset version, list and show them."""
