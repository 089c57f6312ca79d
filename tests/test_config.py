"""Config validation: impossible configs fail where they are made, naming the field."""
from __future__ import annotations

import dataclasses

import pytest

from fixar.config import DEFAULT, ConfigError, FixarConfig, FixedFormat, PEConfig, load


@pytest.mark.parametrize("kwargs,match", [
    (dict(bits=16, frac=17), "frac: 17 fraction bits do not fit in a 16-bit word"),
    (dict(bits=0, frac=0), "bits: 0 is below the minimum 1"),
    (dict(bits=16, frac=4, rounding="nearest"), "rounding: 'nearest' is not one of"),
    (dict(bits=16, frac=4, overflow="clamp"), "overflow: 'clamp' is not one of"),
    (dict(bits=16.0, frac=4), "bits: expected an integer"),
])
def test_bad_formats(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FixedFormat(**kwargs)


@pytest.mark.parametrize("changes,match", [
    (dict(acc_bits=40), "accumulator is narrower than one 32x16 lane product"),
    (dict(acc_bits=63), "pe.acc_bits: 63 is above the maximum 62"),
    (dict(act32=FixedFormat(24, 16)), "must hold exactly two 16-bit lanes"),
    (dict(act16=FixedFormat(8, 7)), "one lane \\(16 bits\\)"),
    (dict(out=FixedFormat(40, 36)), "pe.out.frac: in FXP16 mode the product has fewer fraction bits"),
    (dict(weight=FixedFormat(40, 20)), "pe.weight.bits: 40 is above the maximum 32"),
    (dict(out=FixedFormat(32, 20, signed=False)), "pe.out: the PE multiplies signed operands only"),
])
def test_bad_pe(changes, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(PEConfig(), **changes)


def test_output_fraction_beyond_product_is_rejected():
    with pytest.raises(ConfigError, match="FXP16 mode"):
        PEConfig(out=FixedFormat(48, 36))


def test_variant_revalidates():
    with pytest.raises(ConfigError, match="name"):
        DEFAULT.variant(name="has space")


def test_json_round_trip_and_digest():
    for name in ("default", "small", "narrow", "stochastic"):
        cfg = load(name)
        again = FixarConfig.from_json(cfg.to_json())
        assert again == cfg and again.digest == cfg.digest
    assert load("small").digest != DEFAULT.digest


def test_toml_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[pe.out]\nbits = 32\nfrac = 33\n')
    with pytest.raises(ConfigError, match=r"bad.toml: pe.out.frac: 33 fraction bits do not fit"):
        FixarConfig.from_toml(bad)
    bad.write_text('name = "x"\n[pe]\nacc_width = 58\n')
    with pytest.raises(ConfigError, match=r"pe: unknown key\(s\) \['acc_width'\]"):
        FixarConfig.from_toml(bad)
    bad.write_text('name = "x"\n[array]\nquantizer_rounding = "nearest"\n')
    with pytest.raises(ConfigError, match=r"array.quantizer_rounding: 'nearest' is not one of \('half_up', 'floor'\)"):
        FixarConfig.from_toml(bad)
    bad.write_text('name = "x"\n[array]\nquantizer_rounding = "floor"\n')
    assert FixarConfig.from_toml(bad).array.quantizer_rounding == "floor"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        FixarConfig.from_toml(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        FixarConfig.from_toml(tmp_path / "missing.toml")


def test_unknown_config_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="neither a shipped config .*'small'"):
        load("smal")


def test_derived_widths_of_the_default():
    pe = DEFAULT.pe
    assert (pe.product_bits, pe.guard_bits, pe.shift32, pe.shift16) == (48, 10, 20, 15)


def test_a_rounding_a_unit_cannot_build_is_named():
    """The Adam unit has no random words: a stochastic moment is refused by
    field, and its weight update rounds to nearest even only."""
    from fixar.gen.units.adam import AdamUnit
    ad = DEFAULT.adam
    odd = DEFAULT.variant(adam=dataclasses.replace(ad, m=dataclasses.replace(ad.m, rounding="stochastic")))
    with pytest.raises(ConfigError, match="adam.m: the Adam unit saturates it and rounds it without random words"):
        AdamUnit(odd)
    floor_w = DEFAULT.variant(pe=dataclasses.replace(DEFAULT.pe, weight=dataclasses.replace(DEFAULT.pe.weight,
                                                                                          rounding="floor")))
    with pytest.raises(ConfigError, match="pe.weight: .* got rounding 'floor'"):
        AdamUnit(floor_w)


def test_the_bfp_front_and_converter_refuse_groups_they_cannot_convert():
    """bfp.in_array needs a group per PE column and e large enough for a
    group to convert alone; the converter needs the latter too."""
    from fixar.gen.units.bfp_convert import BfpConvert
    from fixar.gen.units.core import ArrayCore
    front = load("small_bfp")
    ArrayCore.check(front)
    for bfp, what in ((dict(group=16), "bfp.group = array.rows"), (dict(exp_bits=4), "got e = 4")):
        with pytest.raises(ConfigError, match=what):
            ArrayCore.check(front.variant(bfp=dataclasses.replace(front.bfp, **bfp)))
    with pytest.raises(ConfigError, match="bfp.exp_bits = 4: the converter needs 2\\^exp_bits >= 32"):
        BfpConvert(DEFAULT.variant(bfp=dataclasses.replace(DEFAULT.bfp, exp_bits=4)))
    with pytest.raises(ConfigError, match="bfp.in_array: expected true or false"):
        FixarConfig.from_dict({**DEFAULT.to_dict(), "bfp": {"in_array": "yes"}})
