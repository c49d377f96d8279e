import sys

from runestone.cli import main

sys.exit(main())
