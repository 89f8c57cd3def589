"""Multi-process mode: a supervisor and data-plane workers."""
