from digitprep.cli import main

main()
