from listmgr.cli import main

raise SystemExit(main())
