"""The HTTP server: OpenAI-compatible chat over SSE, threads, knowledge bases, health and metrics."""
