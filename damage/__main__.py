from damage.cli import main

main()
