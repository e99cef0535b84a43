from aiopsd.cli import main

main()
