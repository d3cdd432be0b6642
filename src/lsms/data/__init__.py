"""Data: image/volume I/O, the LViT layout, referring manifests, samples, dataset and checks.

Kept light on purpose: import the submodules (``lsms.data.io``, ``lsms.data.samples``,
``lsms.data.dataset``, ...) for the functions; nothing heavy is imported with the package.
"""
