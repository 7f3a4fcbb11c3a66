"""`python -m mechvalue.cli`."""

import sys

from mechvalue.cli.main import main

sys.exit(main())
