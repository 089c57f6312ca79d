"""generated() emits a config's RTL once and reuses the folder until the
generator's sources change or a file the manifest names goes missing."""
from __future__ import annotations

import shutil

import fixar.gen
import fixar.gen.emit
import fixar.sim.rtl as rtl
from fixar.config import load


def _counting_emit(monkeypatch) -> list:
    calls = []
    real = fixar.gen.emit.emit

    def emit(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(fixar.gen.emit, "emit", emit)
    return calls


def test_generated_folder_is_reused_until_the_generator_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(rtl, "BUILD_ROOT", tmp_path)
    calls = _counting_emit(monkeypatch)
    cfg = load("small")
    out = rtl.generated(cfg)
    assert (out / "fixar_pe.v").is_file() and len(calls) == 1
    assert rtl.generated(cfg) == out and len(calls) == 1, "an unchanged generator emitted again"

    monkeypatch.setattr(rtl, "generator_sources_digest", lambda: "0" * 64)      # as if gen/ had been edited
    rtl.generated(cfg)
    assert len(calls) == 2, "the generator's sources changed but the old folder was reused"
    assert (out / "generator.sha256").read_text() == "0" * 64

    (out / "fixar_pe.v").unlink()
    rtl.generated(cfg)
    assert len(calls) == 3 and (out / "fixar_pe.v").is_file(), "a folder with a missing module was reused"


def test_sources_digest_follows_the_generator_files(tmp_path, monkeypatch):
    """The digest covers gen/'s files: the same tree gives the same digest, an edited one another."""
    first = rtl.generator_sources_digest()
    assert rtl.generator_sources_digest() == first
    gen_copy = tmp_path / "gen"
    shutil.copytree(fixar.gen.emit.__file__.rsplit("/", 1)[0], gen_copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fixar.gen, "__file__", str(gen_copy / "__init__.py"))
    assert rtl.generator_sources_digest() == first
    (gen_copy / "emit.py").write_text((gen_copy / "emit.py").read_text() + "\n# edited\n")
    assert rtl.generator_sources_digest() != first
