"""Model architectures; importing this package registers every preset in :mod:`lsms.models.registration`."""

from lsms.models import lsms as _lsms  # noqa: F401  (registers lsms, lsms-f1, lsms-table1, lsms-nano)
