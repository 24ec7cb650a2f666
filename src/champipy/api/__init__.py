"""HTTP layer: translates requests to service calls and typed errors to status codes."""
