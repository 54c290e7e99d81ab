"""`python -m api_service.devtools`: the `make run` launcher."""

from api_service.devtools.launcher import main

main()
