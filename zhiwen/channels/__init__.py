"""Chat channels other than the HTTP API: each runs turns through ``zhiwen.turns.stream_turn``."""
