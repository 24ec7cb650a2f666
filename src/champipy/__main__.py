from champipy.cli import app

app(prog_name="champipy")
