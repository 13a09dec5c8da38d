from netsleuth.cli import run

run()
