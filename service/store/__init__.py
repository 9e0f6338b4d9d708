"""Query functions over the models. Each takes a Session, flushes, and never commits: the caller at
the edge (one transaction per request) owns the commit."""
