"""The one box grammar of the CLIs: x,y,w,h with commas and / or spaces."""
import argparse

import pytest

from siam_tracker_ros.cli.boxes import BoxAction, box_argument, parse_box


@pytest.mark.parametrize("text", ["10,20,30,40", "10 20 30 40", "10, 20, 30, 40", " 10 ,20 , 30,40 ",
                                  "10\t20\t30\t40", "1e1,2e1,3e1,4e1", "+10,20.0,30,40"])
def test_accepted_spellings(text):
    assert parse_box(text) == (10.0, 20.0, 30.0, 40.0)


def test_negative_position_is_a_box_partly_outside():
    assert parse_box("-5,-2.5,10,10") == (-5.0, -2.5, 10.0, 10.0)


@pytest.mark.parametrize("text,reason", [
    ("", "got 0"), ("1,2,3", "got 3"), ("1 2 3 4 5", "got 5"), ("1,2,3,4,", "got 5"),
    ("1,,3,4", "y is empty"), ("a,2,3,4", "x = 'a' is not a number"),
    ("1,2,3,4px", "h = '4px' is not a number"),
    ("nan,2,3,4", "x must be finite"), ("1,2,NaN,4", "w must be finite"), ("1,2,3,inf", "h must be finite"),
    ("1,2,0,4", "must be positive, got w=0 h=4"), ("1,2,3,-4", "must be positive, got w=3 h=-4"),
])
def test_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_box(text)


def test_untrusted_text_is_quoted_in_the_message():
    with pytest.raises(ValueError) as info:
        parse_box("1\n2,3")
    assert "\n" not in str(info.value)


def parser_with(**kwargs):
    parser = argparse.ArgumentParser(prog="tool", exit_on_error=False)
    parser.add_argument("--box", **kwargs)
    return parser


def test_argparse_type_keeps_the_message(capsys):
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--box", type=box_argument)
    assert parser.parse_args(["--box", "1,2,3,4"]).box == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--box", "1,2,nan,4"])
    assert info.value.code == 2
    assert "w must be finite" in capsys.readouterr().err


def test_box_action_takes_one_word_or_four(capsys):
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--box", nargs="+", action=BoxAction)
    parser.add_argument("--fps", type=float)
    assert parser.parse_args(["--box", "1", "2", "3", "4", "--fps", "5"]).box == (1.0, 2.0, 3.0, 4.0)
    assert parser.parse_args(["--box", "1,2,3,4"]).box == (1.0, 2.0, 3.0, 4.0)
    assert parser.parse_args(["--box", "1,", "2,", "3,", "4"]).box == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["--box", "1", "2", "3"])
    assert "got 3" in capsys.readouterr().err
