import sys

from runestone_server.cli import main

sys.exit(main())
