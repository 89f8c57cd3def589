"""Example filters (plugins) for Fulcrum, loadable by dotted path; see docs/plugins.md."""
