"""The worker side of tuneserve: the daemon that pulls and trains trials, and the REST client/SDK."""
