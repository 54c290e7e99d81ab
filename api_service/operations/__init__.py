"""Operations: rate limit storage, deployment figures for /metrics, and the API process 's background upkeep."""
