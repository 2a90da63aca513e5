from issuer.cli import main_exit

main_exit()
