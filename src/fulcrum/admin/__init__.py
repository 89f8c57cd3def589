"""The admin listener: REST API (with its OpenAPI document), Prometheus metrics,
probes and the live dashboard, served beside the proxy on the same event loop."""
