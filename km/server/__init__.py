"""`km serve`: the Kilometers API that the uplink delivers captured events to.

Layout: sans-IO cores (`validate`, `batch`, `body`, `ratelimit`, `latency`, `cursor`, `keys`,
`payload`), the stores behind one abstract `EventStore` (`stores/`), a thin aiohttp shell
(`app`, `auth`, `handlers/`) and the command line (`cli`, `serve`). See README.md.
"""
