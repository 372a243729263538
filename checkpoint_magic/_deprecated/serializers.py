"""Deprecated: ``checkpoint_magic.serializers`` moved (see :data:`checkpoint_magic._deprecated.MOVED`)."""

from checkpoint_magic._deprecated import redirect

redirect("serializers")
