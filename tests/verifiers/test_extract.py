from hypothesis import given
from hypothesis import strategies as st

from rlvr.verifiers.extract import answer_tags, boxed_contents, last_line


def test_boxed_contents_keeps_nested_braces():
    assert boxed_contents(r"a \boxed{\frac{1}{2}} b \boxed {3}") == [r"\frac{1}{2}", "3"]
    assert boxed_contents(r"\fbox{x}") == ["x"]
    assert boxed_contents(r"\boxed{\{1, 2\}}") == [r"\{1, 2\}"]
    assert boxed_contents("no box") == []
    assert boxed_contents(r"\boxed{unclosed") is None
    assert boxed_contents(r"\boxed{}") == [""]


def test_answer_tags_and_last_line():
    assert answer_tags("<answer>1</answer> and <answer>\n2\n</answer>") == ["1", "\n2\n"]
    assert last_line("a\nb  \n\n") == "b" and last_line(" \n ") is None


@given(st.text())
def test_extractors_never_raise(text):
    boxes = boxed_contents(text)
    assert boxes is None or all(isinstance(b, str) for b in boxes)
    answer_tags(text)
    last_line(text)


@given(st.text(alphabet="{}ab", max_size=30))
def test_extracted_box_is_balanced(inner):
    boxes = boxed_contents("\\boxed{" + inner + "}")
    if boxes is not None:
        for box in boxes:
            depth = 0
            for ch in box:
                depth += (ch == "{") - (ch == "}")
                assert depth >= 0
            assert depth == 0
