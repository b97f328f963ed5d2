"""The commands: ``classify``, ``validate``, ``serve`` and ``samples`` (console scripts ``top5-classify``,
``top5-validate``, ``top5-serve``, ``top5-samples``; the checkout's ``classify.py`` ... call the same).

Each command module has ``main(argv) -> int``; :mod:`.arguments` builds their shared flags from
:class:`~top5hub.models.RunConfig`. The library (``models``, ``transforms``) never imports this package.
"""

import os

# Before torch loads OpenMP (every command imports this package first): idle threads sleep instead of
# spinning, so a busy neighbour on a small machine does not stall every parallel region.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
