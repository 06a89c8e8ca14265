from visearch.cli import main

main()
