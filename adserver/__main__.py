from adserver.cli.commands import main

raise SystemExit(main())
