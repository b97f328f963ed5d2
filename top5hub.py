"""Import anchor for this checkout: ``import top5hub.models``, ``import top5hub.transforms``.

The repo's ``models`` and ``transforms`` packages use relative imports and are
always imported as sub-packages of this anchor, never as top-level ``models`` or
``transforms``. So another project's package of that name (a second torch.hub
repo in the same process, say) neither shadows them nor is shadowed by them.
"""

import os

__path__ = [os.path.dirname(os.path.abspath(__file__))]
