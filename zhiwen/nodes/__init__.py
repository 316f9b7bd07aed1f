"""One module per graph node; only ``zhiwen.graph.builder`` imports them."""
