"""Codecs: how a stored value becomes bytes, and how registered savers plug in.

``serializers`` turns values into bytes; ``saver_codec`` plugs registered savers in.
"""
