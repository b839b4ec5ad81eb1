"""The dashboard: see and steer the pool from a browser (Bull Board is the model).

Served at `/` by the HTTP server of `ebook-pool run` (when HTTP_PORT/PORT is set and
DASHBOARD_ENABLED is true) or alone by `ebook-pool dashboard`. Everything it loads ships in
this package (`static/`, `templates/`); it reads Redis only, through the pool's own functions.
"""

from pool_app.dashboard.app import READ_ONLY_WHY, TOKEN_HEADER, add_dashboard, dashboard_app

__all__ = ["READ_ONLY_WHY", "TOKEN_HEADER", "add_dashboard", "dashboard_app"]
