"""Deprecated: ``checkpoint_magic.magics`` moved (see :data:`checkpoint_magic._deprecated.MOVED`)."""

from checkpoint_magic._deprecated import redirect

redirect("magics")
