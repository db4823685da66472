"""fewgen-munit: MUNIT (multimodal unsupervised image-to-image translation) for fewgen; part 1: networks and losses."""
