"""Building blocks the nodes use: models, embeddings, indexes, fusion, think-tag filtering."""
