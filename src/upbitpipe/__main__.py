from upbitpipe.cli.main import run

run()
