from trtpack.cli.main import main

main()
