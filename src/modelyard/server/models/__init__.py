"""The registry's writes over HTTP (aliases, deleting versions and runs) and who uses what a delete removes."""
