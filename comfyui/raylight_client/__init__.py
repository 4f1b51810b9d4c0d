"""Client side of `raylight serve` for the ComfyUI node pack (standard library only)."""

from .client import RaylightCancelled, RaylightClient, RaylightError
from .launcher import ensure_server, find_binary, start_server
from .safetensors_io import RawTensor, SafetensorsError, decode, encode

__all__ = ["RaylightClient", "RaylightError", "RaylightCancelled", "ensure_server", "start_server",
           "find_binary", "RawTensor", "SafetensorsError", "encode", "decode"]
