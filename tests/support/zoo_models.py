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


def video_r2plus1d():
    video = import_torchvision().models.video.resnet
    model = video.VideoResNet(block=video.BasicBlock, conv_makers=[video.Conv2Plus1D] * 4, layers=[1, 1, 1, 1],
                              stem=video.R2Plus1dStem, num_classes=10)
    return model, (torch.randn(2, 3, 4, 32, 32),), {}, ({0: BATCH},)


def regnet():
    models = import_torchvision().models
    params = models.regnet.BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8)
    return models.RegNet(params, num_classes=10), (_images(),), {}, ({0: BATCH},)


def timm_mixer():
    import_torchvision()
    from timm.models.mlp_mixer import MlpMixer
    model = MlpMixer(num_classes=10, img_size=32, patch_size=8, num_blocks=2, embed_dim=32)
    return model, (_images(),), {}, ({0: BATCH},)


def timm_volo():
    import_torchvision()
    from timm.models.volo import VOLO
    model = VOLO(layers=(1, 1, 1, 1), img_size=32, patch_size=8, stem_hidden_dim=16, embed_dims=(32, 32, 32, 32),
                 num_heads=(1, 1, 2, 2), outlook_attention=(True, False, False, False),
                 downsamples=(True, False, False, False), num_classes=10)
    return model, (_images(),), {}, ({0: BATCH},)


def segformer():
    import_torchvision()  # transformers imports it too, where present
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                             patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=32, num_labels=3)
    kwargs = {"pixel_values": _images(size=64)}
    return SegformerForSemanticSegmentation(config), (), kwargs, _batch_dims(kwargs)


def detr():
    import_torchvision()  # transformers imports it too, where present
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig
    backbone = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1],
                            layer_type="basic", out_features=["stage4"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False, d_model=32,
                        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=10, num_labels=5)
    kwargs = {"pixel_values": _images(size=64)}
    return DetrForObjectDetection(config), (), kwargs, _batch_dims(kwargs)


def yolos():
    import_torchvision()  # transformers imports it too, where present
    from transformers import YolosConfig, YolosForObjectDetection
    config = YolosConfig(image_size=[32, 32], patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, num_detection_tokens=5, num_labels=5)
    kwargs = {"pixel_values": _images()}
    return YolosForObjectDetection(config), (), kwargs, _batch_dims(kwargs)


def llama4_moe():
    import_torchvision()  # transformers imports it too, where present
    from transformers import Llama4ForCausalLM, Llama4TextConfig
    config = Llama4TextConfig(vocab_size=96, hidden_size=32, intermediate_size=64, intermediate_size_mlp=64,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                              num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=1,
                              no_rope_layers=[0, 0], max_position_embeddings=32, use_cache=False)
    kwargs = {"input_ids": _tokens()}
    return Llama4ForCausalLM(config), (), kwargs, _batch_dims(kwargs)


def mamba():
    import_torchvision()  # transformers imports it too, where present
    from transformers import MambaConfig, MambaForCausalLM
    config = MambaConfig(vocab_size=96, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
                         use_cache=False, use_mambapy=False)
    kwargs = {"input_ids": _tokens()}
    return MambaForCausalLM(config), (), kwargs, _batch_dims(kwargs)


def mamba2():
    import_torchvision()  # transformers imports it too, where present
    from transformers import Mamba2Config, Mamba2ForCausalLM
    config = Mamba2Config(vocab_size=96, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
                          num_heads=8, head_dim=8, n_groups=1, chunk_size=4, use_cache=False)
    kwargs = {"input_ids": _tokens()}
    return Mamba2ForCausalLM(config), (), kwargs, _batch_dims(kwargs)


def rwkv():
    import_torchvision()  # transformers imports it too, where present
    from transformers import RwkvConfig, RwkvForCausalLM
    config = RwkvConfig(vocab_size=96, context_length=32, hidden_size=32, num_hidden_layers=2, attention_hidden_size=32,
                        intermediate_size=64, use_cache=False)
    kwargs = {"input_ids": _tokens()}
    return RwkvForCausalLM(config), (), kwargs, _batch_dims(kwargs)


def clip():
    import_torchvision()  # transformers imports it too, where present
    from transformers import CLIPConfig, CLIPModel
    config = CLIPConfig(
        text_config=dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2),
        projection_dim=16)
    kwargs = {"input_ids": _tokens(), "pixel_values": _images(), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    return CLIPModel(config), (), kwargs, _batch_dims(kwargs)


def videomae():
    import_torchvision()  # transformers imports it too, where present
    from transformers import VideoMAEConfig, VideoMAEModel
    config = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    kwargs = {"pixel_values": torch.randn(2, 4, 3, 32, 32)}
    return VideoMAEModel(config), (), kwargs, _batch_dims(kwargs)


def patchtst():
    import_torchvision()  # transformers imports it too, where present
    from transformers import PatchTSTConfig, PatchTSTForPrediction
    config = PatchTSTConfig(num_input_channels=3, context_length=32, patch_length=8, patch_stride=8,
                            prediction_length=8, d_model=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64)
    kwargs = {"past_values": torch.randn(2, 32, 3)}
    return PatchTSTForPrediction(config), (), kwargs, _batch_dims(kwargs)


def dpt():
    import_torchvision()  # transformers imports it too, where present
    from transformers import DPTConfig, DPTForDepthEstimation
    config = DPTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                       intermediate_size=64, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32],
                       fusion_hidden_size=16, head_in_index=-1)
    kwargs = {"pixel_values": _images()}
    return DPTForDepthEstimation(config), (), kwargs, _batch_dims(kwargs)


def bart():
    import_torchvision()  # transformers imports it too, where present
    from transformers import BartConfig, BartForConditionalGeneration
    config = BartConfig(vocab_size=96, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=32,
                        use_cache=False)
    kwargs = {"input_ids": _tokens(), "decoder_input_ids": _tokens(length=4)}
    return BartForConditionalGeneration(config), (), kwargs, _batch_dims(kwargs)


def maxvit():
    models = import_torchvision().models
    model = models.MaxVit(input_size=(64, 64), stem_channels=8, partition_size=2, block_channels=[16, 32],
                          block_layers=[1, 1], head_dim=8, stochastic_depth_prob=0.0, num_classes=10)
    return model, (_images(size=64),), {}, ({0: BATCH},)  # einsum("B G H I D, B G H J D -> B G H I J")


def timm_hiera():
    import_torchvision()
    from timm.models.hiera import Hiera
    model = Hiera(img_size=(64, 64), embed_dim=16, num_heads=1, stages=(1, 1, 1, 1), q_pool=2,
                  mask_unit_size=(4, 4), global_pos_size=(4, 4), num_classes=10)
    return model, (_images(size=64),), {}, ({0: BATCH},)  # attention over 5-D [batch, windows, heads, tokens, dim]


def timm_sequencer():
    import_torchvision()
    from timm.models.sequencer import Sequencer2d
    model = Sequencer2d(img_size=32, layers=(1, 1), patch_sizes=(4, 2), embed_dims=(16, 32), hidden_sizes=(8, 16),
                        mlp_ratios=(2.0, 2.0), num_classes=10)
    return model, (_images(),), {}, ({0: BATCH},)  # bidirectional LSTMs over rows and columns


def wavlm():
    import_torchvision()  # transformers imports it too, where present
    from transformers import WavLMConfig, WavLMModel
    config = WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, num_buckets=16, max_bucket_distance=64)
    kwargs = {"input_values": torch.randn(2, 1600)}  # gated relative positions: a view the exporter cannot retrace
    return WavLMModel(config), (), kwargs, _batch_dims(kwargs)


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
    Entry("video_r2plus1d", "torchvision video (3-D convolutions)", "torchvision", video_r2plus1d),
    Entry("regnet", "torchvision CNN with dashed module names (block1-0)", "torchvision", regnet),
    Entry("timm_mixer", "timm MLP-Mixer", "timm", timm_mixer, ci=False),
    Entry("timm_volo", "timm outlook attention (unfold / fold)", "timm", timm_volo),
    Entry("segformer", "transformers semantic segmentation head", "transformers", segformer),
    Entry("detr", "transformers detection head (DETR, ResNet backbone)", "transformers", detr, ci=False),
    Entry("yolos", "transformers detection head (ViT)", "transformers", yolos),
    Entry("llama4_moe", "transformers mixture of experts (dense)", "transformers", llama4_moe),
    Entry("mamba", "transformers state space", "transformers", mamba),
    Entry("mamba2", "transformers state space", "transformers", mamba2, ci=False),
    Entry("rwkv", "transformers recurrent (linear attention)", "transformers", rwkv, ci=False),
    Entry("clip", "transformers dual encoder (text + image)", "transformers", clip, ci=False),
    Entry("videomae", "transformers video (3-D patches)", "transformers", videomae),
    Entry("patchtst", "transformers time series", "transformers", patchtst, ci=False),
    Entry("dpt", "transformers depth estimation", "transformers", dpt, ci=False),
    Entry("bart", "transformers encoder-decoder", "transformers", bart, ci=False),
    Entry("maxvit", "torchvision multi-axis attention (upper-case einsum)", "torchvision", maxvit, ci=False),
    Entry("timm_hiera", "timm hierarchical ViT (5-D attention)", "timm", timm_hiera),
    Entry("timm_sequencer", "timm LSTM image model", "timm", timm_sequencer, ci=False),
    Entry("wavlm", "transformers audio encoder (gated relative positions)", "transformers", wavlm, ci=False),
]
BY_NAME = {entry.name: entry for entry in ZOO}
