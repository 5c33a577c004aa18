"""The web page behind ``convsight serve`` (FastAPI + uvicorn): the ``web`` extra.

Importing any module here without that extra raises :class:`~convsight.extras.MissingExtraError`,
one line naming ``pip install 'convsight[web]'``, instead of a bare ``No module named 'fastapi'``.
"""

from convsight.extras import require

require("web", "convsight.web (the page of convsight serve)")
