"""The HTTP layer: parse and validate requests, call the repository, serialise rows."""
