"""The uplink: spooled events to the Kilometers API (docs/api.md), each delivered once.

Sans-IO cores: `backoff`, `breaker`, `batches`, `outcome`, `secret`. Shells: `leases` (the
spool), `client` (HTTP), `run` (`Uplink`), `background` (the thread in a km capture process),
`cli` (`km sync`, `km login`, `km config`). Kept import-free: `background` must stay light.
"""
