"""The insight core: what captured MCP traffic means. Sans-IO: plain data in, plain data out.

No I/O, no asyncio, no SQLite here. Every shell (the capture process, `km serve`'s ingest, the
CLI, exports, later the dashboard and the guard) calls these same functions, so a session
analysed locally and on the server gives equal findings and figures.

    findings.py     Finding, severities and their order (shared by every analyzer)
    identity.py     what a request acts on (tool name, prompt name, resource URI, completion ref)
    definitions.py  tool definitions: canonical JSON, hashes, paginated lists put together
    inventory.py    per-server tool inventory and drift (added, removed, changed, rug pull)
    poisoning.py    poisoning findings over tool definitions (rules in poisoning_rules.py)
    risk.py         risk of each tools/call (score, level, reasons) and the toxic-flow finding
                    (rules in risk_rules.py; the arguments' side in risk_scan.py;
                    capabilities and the flow tracker in flow.py)
    tokens.py       tokens of message content and of a server's tool list (o200k_base BPE)
    cost.py         price table per model, cost of input and output tokens
"""
