import pytest
import torch
from toymodels import char_tokenizer
from transformers import AutoTokenizer

from rlvr.tokens import default_system_prompt, encode_prompts, position_ids, render_prompt

TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}[system:default]{% endif %}"
    "[{{ m['role'] }}:{{ m['content'] }}]{% endfor %}{% if add_generation_prompt %}[assistant:{% endif %}"
)


@pytest.fixture
def tok():
    tokenizer = char_tokenizer()
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def test_render_applies_the_template_or_passes_text_through(tok):
    assert render_prompt(tok, "abc") == "[system:default][user:abc][assistant:"
    assert render_prompt(tok, "abc", chat_template=False) == "abc"
    with pytest.raises(ValueError, match="chat template"):
        render_prompt(char_tokenizer(), [{"role": "user", "content": "a"}])


@pytest.mark.parametrize("text", ["", "be brief", "it's a \\boxed{} answer"])
def test_a_default_system_prompt_replaces_the_templates_and_is_saved(tok, tmp_path, text):
    default_system_prompt(tok, text)
    assert render_prompt(tok, "abc") == f"[system:{text}][user:abc][assistant:"
    own = [{"role": "system", "content": "mine"}, {"role": "user", "content": "abc"}]
    assert render_prompt(tok, own) == "[system:mine][user:abc][assistant:"
    tok.save_pretrained(tmp_path)
    assert render_prompt(AutoTokenizer.from_pretrained(tmp_path), "abc") == render_prompt(tok, "abc")


def test_a_system_prompt_needs_a_template():
    with pytest.raises(ValueError, match="no chat template"):
        default_system_prompt(char_tokenizer(), "")


def test_prompts_are_left_padded_and_positions_skip_the_padding():
    tok = char_tokenizer()
    ids, mask = encode_prompts(tok, ["abc", "d"])
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]] and ids[1, :2].tolist() == [tok.pad_token_id] * 2
    assert position_ids(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    assert tok.padding_side == "right"  # restored after the call
    assert torch.equal(
        position_ids(torch.tensor([[0, 1, 1, 0]])), torch.tensor([[0, 0, 1, 1]])
    )  # padding after the end is masked anyway
