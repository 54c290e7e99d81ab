"""The Stats API: counts per day, computed by PostgreSQL (GROUP BY over indexed columns)."""
