"""Where models run: cuda > mps > cpu, and the dtype that suits the device.

torch is imported inside the functions so that importing this module (at app start) stays cheap.
"""
from __future__ import annotations



def resolve_device(preference: str = "auto") -> str:
    """Return a torch device string. 'auto' picks cuda, then mps, then cpu."""
    import torch

    pref = (preference or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {preference}: no CUDA GPU is visible to PyTorch")
    if pref == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple's Metal backend is not available here")
    return pref


def default_dtype(device: str, prefer_bf16: bool = False):
    """fp32 on CPU (fp16 matmuls are slow or unsupported there); fp16 (or bf16) on GPUs."""
    import torch

    if device.startswith("cuda"):
        if prefer_bf16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def gpu_memory_bytes(device: str) -> int | None:
    """Total memory of a CUDA device, or None for CPU/MPS."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_properties(torch.device(device)).total_memory
