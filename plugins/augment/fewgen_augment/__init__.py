"""fewgen-augment: a fewgen plugin that adds augmented copies of images with albumentations."""
