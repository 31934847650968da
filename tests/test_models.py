"""Loading models: LoRA checkpoints load onto their base model."""

import json

import pytest
import torch
from toymodels import save_tiny_model

from rlvr.models import ModelNotFoundError, is_adapter_folder, load_model_and_tokenizer
from rlvr.policy import add_lora


def _trained_adapters(tmp_path):
    base = save_tiny_model(tmp_path / "base")
    model, tokenizer = load_model_and_tokenizer(base)
    peft_model = add_lora(model, r=4, alpha=8)
    torch.manual_seed(0)
    with torch.no_grad():  # adapters that change the output (peft starts lora_B at zero)
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    folder = tmp_path / "checkpoint"
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return peft_model.eval(), folder


def test_a_lora_checkpoint_loads_merged_onto_its_base(tmp_path):
    peft_model, folder = _trained_adapters(tmp_path)
    assert is_adapter_folder(folder)
    loaded, tokenizer = load_model_and_tokenizer(str(folder))
    ids = torch.tensor([tokenizer.encode("abcab")])
    with torch.no_grad():
        want = peft_model(ids).logits
        base_only = peft_model.get_base_model()  # same module; adapters on
        got = loaded(ids).logits
    assert not hasattr(loaded, "peft_config")  # merged: a plain model
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with torch.no_grad(), peft_model.disable_adapter():
        assert not torch.allclose(base_only(ids).logits, got, atol=1e-3)  # the adapters mattered


def test_a_lora_checkpoint_whose_base_is_gone_fails_clearly(tmp_path):
    _, folder = _trained_adapters(tmp_path)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "nowhere")
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises((ModelNotFoundError, OSError), match="nowhere"):
        load_model_and_tokenizer(str(folder))


def test_a_folder_that_is_no_model_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_model_and_tokenizer(str(tmp_path))
