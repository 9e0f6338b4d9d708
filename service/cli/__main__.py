"""`python -m service.cli ...` is `tuneserve ...`."""
from service.cli import main

raise SystemExit(main())
