"""The server-side sparkline: gaps for unknown points, nothing for too few, escaped labels."""

from __future__ import annotations

from frontend.templatetags.sparkline import sparkline_svg


def test_it_draws_one_polyline_for_known_points():
    svg = sparkline_svg([1.0, 2.0, 3.0], "Request rate")
    assert svg.count("<polyline") == 1
    assert (
        'aria-label="Request rate trend: rising from 1 to 3; low 1, high 3 (3 of 3 points known)"'
        in svg
    )


def test_its_text_equivalent_says_which_way_the_line_went():
    assert "falling from 0.05 to 0.01" in sparkline_svg([0.05, None, 0.01], "Error rate")
    assert "steady at 4" in sparkline_svg([4.0, 4.1, 4.0], "Latency p95")


def test_unknown_points_are_gaps_not_zeros():
    svg = sparkline_svg([1.0, 2.0, None, 3.0, 4.0])
    assert svg.count("<polyline") == 2
    # The highest point sits at the top, the scale starts at zero.
    assert ",2.0" in svg


def test_a_lone_known_point_between_gaps_is_a_dot():
    svg = sparkline_svg([1.0, None, 2.0, None, 3.0])
    assert svg.count("<circle") == 3 and "<polyline" not in svg


def test_it_draws_nothing_without_two_known_points():
    assert sparkline_svg([None, 1.0, None]) == ""
    assert sparkline_svg([]) == ""


def test_it_escapes_the_label():
    svg = sparkline_svg([1.0, 2.0], '<script>"x"</script>')
    assert "<script>" not in svg and "&lt;script&gt;" in svg
