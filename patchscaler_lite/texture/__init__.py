"""Stage 3: the Reference Texture Memory (Gabor descriptor, key network, k-means, memory, storage)."""
