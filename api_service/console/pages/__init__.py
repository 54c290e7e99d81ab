"""The console's pages, one module per section, mirroring the domains they show.

Each module has its own router; `api_service.console.router` includes them in order. A page reads
through the domain services and changes data through `console.forms.submit`.
"""
