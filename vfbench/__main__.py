from vfbench.cli import main

raise SystemExit(main())
