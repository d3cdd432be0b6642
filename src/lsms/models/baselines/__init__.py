"""Baselines of Table 2; importing this package registers their presets in :mod:`lsms.models.registration`.

Text-free (MONAI): ``unet``, ``unetpp``, ``attention-unet``. Text-guided: ``lvit`` and
``late-fusion-unet``. Each has a ``-small`` preset for CPU. See docs/baselines.md.
"""

from lsms.models.baselines import late_fusion, lvit, unets  # noqa: F401  (run the @register_model decorators)
