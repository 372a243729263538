"""Deprecated: ``checkpoint_magic.checkpointer`` moved (see :data:`.MOVED` of ``_deprecated``)."""

from checkpoint_magic._deprecated import redirect

redirect("checkpointer")
