"""`python -m api_service.console …`: see `api_service.console.cli`."""

import sys

from api_service.console.cli import main

sys.exit(main())
