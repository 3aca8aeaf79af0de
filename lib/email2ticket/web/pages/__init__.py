"""The web admin's pages, one module per section of the navigation; web/app.py puts their routes together."""
