"""``python -m dcmstudio.cli``: the same as the ``dcmstudio`` console script."""

from dcmstudio.cli import console

console()
