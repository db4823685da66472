"""fewgen-grayscale: a fewgen plugin that adds grayscale copies of images."""
