from tests.compat.conftest import live_api

__all__ = ["live_api"]
