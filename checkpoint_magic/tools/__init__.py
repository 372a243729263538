"""Store tooling: the ``checkpoint-magic`` command line, listings, gc, clear, pin and verify."""
