import sys

from teleop_app.cli.main import main

sys.exit(main())
