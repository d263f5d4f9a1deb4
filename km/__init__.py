"""km: observability for the Model Context Protocol.

Kept import-free: `km` runs in front of every MCP server launch, so each module imported on the
proxy path costs start-up time (see km/proxy/README in the module docstrings).
"""

__version__ = "0.1.0"
