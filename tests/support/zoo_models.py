"""The zoo: public architectures built from tiny configs with random weights (no downloads, no hub).

Each entry makes (model, args, kwargs, dynamic_shapes) with a dynamic batch. `library` is the package the model's
code comes from: a fresh process loading the model's artifacts must not import it.
"""
from dataclasses import dataclass
from typing import Callable

import torch

from tests.support.torchvision_cpu import import_torchvision

BATCH = torch.export.Dim("batch", min=1, max=8)


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    library: str
    make: Callable  # () -> (model, args, kwargs, dynamic_shapes)
    ci: bool = True  # in the CI-sized run; the rest run only in the `large` test


def _images(batch=2, size=32):
    return torch.randn(batch, 3, size, size)


def _tokens(batch=2, length=8, vocab=96):
    return torch.randint(0, vocab, (batch, length))


def resnet18():
    torchvision = import_torchvision()
    return torchvision.models.resnet18(num_classes=10), (_images(),), {}, ({0: BATCH},)


def mobilenet_v3_small():
    torchvision = import_torchvision()
    return torchvision.models.mobilenet_v3_small(num_classes=10), (_images(size=64),), {}, ({0: BATCH},)


def torchvision_vit():
    VisionTransformer = import_torchvision().models.vision_transformer.VisionTransformer
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=10)
    return model, (_images(),), {}, ({0: BATCH},)


def lraspp_segmentation():
    torchvision = import_torchvision()
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                      num_classes=3)
    return model, (_images(size=64),), {}, ({0: BATCH},)


def timm_convnext():
    import_torchvision()
    import timm
    model = timm.models.convnext.ConvNeXt(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), num_classes=10)
    return model, (_images(),), {}, ({0: BATCH},)


def timm_swin():
    import_torchvision()
    from timm.models.swin_transformer import SwinTransformer
    model = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2),
                            num_classes=10)
    return model, (_images(),), {}, ({0: BATCH},)


def _text_kwargs(**extra):
    return {"input_ids": _tokens(), "attention_mask": torch.ones(2, 8, dtype=torch.long), **extra}


def _batch_dims(kwargs):
    return {name: {0: BATCH} for name in kwargs}


def bert():
    import_torchvision()  # transformers imports it too, where present
    from transformers import BertConfig, BertModel
    config = BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    kwargs = _text_kwargs()
    return BertModel(config), (), kwargs, _batch_dims(kwargs)


def llama():
    import_torchvision()  # transformers imports it too, where present
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32, use_cache=False)
    kwargs = {"input_ids": _tokens()}
    return LlamaForCausalLM(config), (), kwargs, _batch_dims(kwargs)


def gpt2():
    import_torchvision()  # transformers imports it too, where present
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=96, n_positions=32, n_embd=32, n_layer=2, n_head=2, use_cache=False)
    kwargs = {"input_ids": _tokens()}
    return GPT2LMHeadModel(config), (), kwargs, _batch_dims(kwargs)


def t5():
    import_torchvision()  # transformers imports it too, where present
    from transformers import T5Config, T5ForConditionalGeneration
    config = T5Config(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                      use_cache=False, decoder_start_token_id=0)
    kwargs = {"input_ids": _tokens(), "decoder_input_ids": _tokens(length=4)}
    return T5ForConditionalGeneration(config), (), kwargs, _batch_dims(kwargs)


def wav2vec2():
    import_torchvision()  # transformers imports it too, where present
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer")
    kwargs = {"input_values": torch.randn(2, 400)}
    return Wav2Vec2Model(config), (), kwargs, _batch_dims(kwargs)


def whisper_encoder():
    import_torchvision()  # transformers imports it too, where present
    import_torchvision()
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    config = WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                           encoder_ffn_dim=64, max_source_positions=16)
    kwargs = {"input_features": torch.randn(2, 16, 32)}
    return WhisperEncoder(config), (), kwargs, _batch_dims(kwargs)


def hf_vit():
    import_torchvision()  # transformers imports it too, where present
    from transformers import ViTConfig, ViTModel
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64)
    kwargs = {"pixel_values": _images()}
    return ViTModel(config), (), kwargs, _batch_dims(kwargs)


ZOO = [
    Entry("resnet18", "torchvision CNN", "torchvision", resnet18),
    Entry("mobilenet_v3_small", "torchvision CNN", "torchvision", mobilenet_v3_small, ci=False),
    Entry("torchvision_vit", "torchvision transformer", "torchvision", torchvision_vit),
    Entry("lraspp_segmentation", "torchvision segmentation", "torchvision", lraspp_segmentation, ci=False),
    Entry("timm_convnext", "timm CNN", "timm", timm_convnext),
    Entry("timm_swin", "timm transformer", "timm", timm_swin, ci=False),
    Entry("bert", "transformers encoder", "transformers", bert),
    Entry("llama", "transformers decoder (causal mask)", "transformers", llama),
    Entry("gpt2", "transformers decoder (causal mask)", "transformers", gpt2),
    Entry("t5", "transformers encoder-decoder", "transformers", t5, ci=False),
    Entry("wav2vec2", "transformers audio encoder", "transformers", wav2vec2, ci=False),
    Entry("whisper_encoder", "transformers audio encoder", "transformers", whisper_encoder, ci=False),
    Entry("hf_vit", "transformers vision encoder", "transformers", hf_vit, ci=False),
]
BY_NAME = {entry.name: entry for entry in ZOO}
