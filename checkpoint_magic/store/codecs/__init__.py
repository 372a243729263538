"""Codecs: how a stored value becomes bytes (``serializers``) and how registered savers plug in
(``saver_codec``)."""
