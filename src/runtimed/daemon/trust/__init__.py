"""Which packages a notebook may install: the user's allowlist and the review before it."""
