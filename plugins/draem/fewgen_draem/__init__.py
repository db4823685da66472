"""fewgen-draem: DRAEM's simulated surface anomalies (Perlin-noise masks, augmented textures) as a fewgen generator."""
