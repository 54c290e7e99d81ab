"""Cross-cutting pieces of the API: wire normalisation, error rendering, auth, transactions."""
