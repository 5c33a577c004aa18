import sys

from convsight.cli.app import main

sys.exit(main())
