"""Deprecated: ``checkpoint_magic.checkpointer`` moved (see :data:`checkpoint_magic._deprecated.MOVED`)."""

from checkpoint_magic._deprecated import redirect

redirect("checkpointer")
