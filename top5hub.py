"""The one import name of this checkout: ``top5hub.models``, ``top5hub.transforms``, ``top5hub._cli``.

Scripts, tests and ``hubconf.py`` all import the repo under this name, so each
class exists once per process and pickles by a name a spawned process can import
again. The packages use relative imports and are never imported as top-level
``models`` or ``transforms``: another project's package of that name (a second
torch.hub repo in the same process, say) neither shadows them nor is shadowed.
"""

import os

ROOT = os.path.dirname(os.path.realpath(__file__))
__path__ = [ROOT]
