"""The web dashboard, served by the API server on its HTTP port at ``/dashboard/``.

* ``routes``: the aiohttp application (the page, the JSON API, the optional actions).
* ``reads``: what it reads through the engine, in bounded pages.
* ``views``: records as JSON, large fields cut short.
* ``samples``: the in-process history of queue counters behind the charts.
* ``settings``: ``TASKFLOW_DASHBOARD_ACTIONS`` and the sampling period.
* ``static/``: the page itself: plain HTML, CSS and JavaScript, no build step.
"""

from taskflow.dashboard.routes import PREFIX, Dashboard
from taskflow.dashboard.settings import DashboardSettings

__all__ = ["PREFIX", "Dashboard", "DashboardSettings"]
