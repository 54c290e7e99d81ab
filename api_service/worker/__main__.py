"""`python -m api_service.worker`: the worker process."""

from api_service.worker import main

main()
