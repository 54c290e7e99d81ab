import sys

from api_service.importer.cli import main

sys.exit(main())
