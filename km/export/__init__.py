"""Exports of what km captured (km export / km import): JSONL (lossless), OTLP traces and
metrics (OpenTelemetry MCP semantic conventions), SARIF findings. Pure encoders beside thin
shells that read the spool and write files or endpoints."""
