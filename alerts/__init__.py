"""Alerts, on-call and incidents: what the control plane sees going wrong, who owns it at that
instant, how it escalates, who is told, and the incident that gathers it all in one timeline.
It sits above monitoring (it reads the same tiles the pages show) and below the pages."""
