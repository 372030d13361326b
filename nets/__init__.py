"""stylebot's image engine: style transfer, CycleGAN and Real-ESRGAN in plain PyTorch.

Importing `nets` is cheap: torch loads only when `nets.engine` is imported, so a
front end can use `nets.imageio` and `nets.errors` without it.
"""
