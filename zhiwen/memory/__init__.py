"""Knowledge bases (documents, chunks, both indexes) and conversation checkpointers."""
