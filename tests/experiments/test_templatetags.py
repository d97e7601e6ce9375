"""How the experiment page writes its statistics."""

from apps.experiments.templatetags.experiments import p_value


def test_a_tiny_p_value_reads_as_below_a_thousandth_not_as_zero():
    assert p_value(0.000161) == "< 0.001"
    assert p_value(0.0421) == "= 0.0421"
    assert p_value(0.5) == "= 0.5"
    assert p_value(None) == "—"
