from abonent.cli import main

main()
