"""``python -m ebm_course``: see :mod:`ebm_course.cli`."""

import sys

from .cli import main

sys.exit(main())
