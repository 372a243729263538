"""The IPython extension: the ``%%checkpoint`` cell magic, its parts, and the inspection magics.

Nothing here is imported by the layers below; IPython is imported only when the extension loads.
"""
