from evotrain.cli import main

main()
