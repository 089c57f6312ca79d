"""Records a long bench part keeps between runs at one commit, so that an
interrupted part (Ctrl-C, a session's end) resumes where it stopped: the
trainer part's full-size RTL steps take tens of minutes per batch size, and
a part writes summary.json only when it ends. A record counts only for the
commit and config it was measured at (the key); anything else starts over.
The file lives in bench/results/ beside summary.json, which git ignores."""
from __future__ import annotations

import json
import os
from pathlib import Path


class PartCache:
    """Named records of one part, valid for one key (commit and config)."""

    def __init__(self, path: Path, key: str, reuse: bool = True):
        """``reuse`` False: start over whatever the file holds (a tree with
        uncommitted changes: its commit does not say what was measured)."""
        self.path, self.key = path, key
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        self.records: dict = data.get("records", {}) if reuse and data.get("key") == key else {}

    def get(self, name: str):
        return self.records.get(name)

    def put(self, name: str, record) -> None:
        """Keep ``record`` under ``name``, written whole or not at all (a temporary file, then a rename)."""
        self.records[name] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, "records": self.records}, indent=1))
        os.replace(tmp, self.path)
