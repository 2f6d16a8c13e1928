import sys

from ingestion.app import main

sys.exit(main())
