"""`python -m api_service.delivery`: the delivery worker."""

from api_service.delivery.worker import main

main()
