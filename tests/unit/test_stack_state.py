"""`stack.json`, what `c2f up` says it runs, is rewritten whenever a child is started again;
whoever reads it meanwhile (a script, the launcher tests) finds it whole, never empty or half
written."""

import json
import threading
from pathlib import Path

from c2f_cli.config import StackConfig
from c2f_cli.stack import Stack


def test_a_reader_never_finds_stack_json_half_written(tmp_path: Path) -> None:
    stack = Stack(StackConfig(home=tmp_path))
    stack.write_state()
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            stack.write_state()

    writer = threading.Thread(target=rewrite)
    writer.start()
    broken = 0
    try:
        for _ in range(2000):
            try:
                json.loads(stack.state_file.read_text())
            except json.JSONDecodeError:
                broken += 1
    finally:
        stop.set()
        writer.join()
    assert broken == 0, f"{broken} of 2000 reads found stack.json half written"
    assert [p.name for p in tmp_path.iterdir()] == ["stack.json"]
