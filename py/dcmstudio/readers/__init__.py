"""Readers of 3-D volume formats, one module each; each returns a ``dcmstudio.volume.Volume``.

Use ``dcmstudio.volume.read_volume``: it picks the reader and turns every library error into a
``VolumeError`` naming the file.
"""
