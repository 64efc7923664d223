from adserver.cli import PROG_NAME, main

main(prog_name=PROG_NAME)
