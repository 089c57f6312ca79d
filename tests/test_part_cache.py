"""The bench parts' record cache (fixar.figures.part_cache): an interrupted
part resumes with the records of the same commit and config, and only those."""
from __future__ import annotations

from fixar.figures.part_cache import PartCache


def test_records_come_back_for_the_same_key_only(tmp_path):
    path = tmp_path / "results" / "records.json"
    cache = PartCache(path, "abc123 digest")
    cache.put("64", {"cycles_fxp32": 187102})
    cache.put("build_s", 1074.4)
    again = PartCache(path, "abc123 digest")
    assert again.get("64") == {"cycles_fxp32": 187102} and again.get("build_s") == 1074.4
    assert PartCache(path, "def456 digest").get("64") is None
    assert PartCache(path, "abc123 digest", reuse=False).get("64") is None
    assert [p.name for p in path.parent.iterdir()] == ["records.json"]    # no temporary file left


def test_a_damaged_file_starts_over(tmp_path):
    path = tmp_path / "records.json"
    path.write_text('{"key": "abc", "records": {"64"')
    cache = PartCache(path, "abc")
    assert cache.get("64") is None
    cache.put("64", 1)
    assert PartCache(path, "abc").get("64") == 1
