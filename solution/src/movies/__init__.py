"""A REST API over IMDb's public movie listings, and the loader that feeds it."""
