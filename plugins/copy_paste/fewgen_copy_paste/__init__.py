"""Simple Copy-Paste for fewgen: real objects pasted into other images, with exact labels."""
