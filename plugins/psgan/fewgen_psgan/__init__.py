"""PS-GAN for fewgen: paint realistic objects into boxes of real scenes (Ouyang et al., 2018)."""
