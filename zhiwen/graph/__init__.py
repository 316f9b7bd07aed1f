"""The turn graph: state, per-run context, routing and the builder."""
