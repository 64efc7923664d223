from adserver.cli import main

raise SystemExit(main())
