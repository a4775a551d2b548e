from digitprep.entry import main

main()
