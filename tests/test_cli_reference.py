from pathlib import Path

from foleygen.cli import main
from foleygen.cli.reference import render

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_up_to_date():
    text = render()
    assert "## foleygen generate" in text and "--plot" in text
    # nested sub-commands get their own sections, with their flags
    assert "### foleygen rate create" in text and "--ab-all" in text and "--keep-all" in text
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == text, "docs/cli.md is stale: run `python -m foleygen.cli.reference > docs/cli.md`"


def test_help_and_version(capsys):
    assert main([]) == 0
    assert "generate" in capsys.readouterr().out
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.startswith("foleygen ")
