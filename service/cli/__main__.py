"""`python -m tuneserve_service.cli ...` is `tuneserve ...`."""
from tuneserve_service.cli import main

raise SystemExit(main())
