"""Instruction-data providers: one interface (``base.Provider``) for the built-in meta-datasets and the
public sets (MultiAlpaca, xP3/xP3mt, Aya, P3, generic files); ``registry`` names and builds them."""

from xlt.instruct.providers.base import InstructionTask, Provider
from xlt.instruct.providers.registry import get_provider, instruction_data, provider_names, register_provider

__all__ = ["InstructionTask", "Provider", "get_provider", "instruction_data", "provider_names", "register_provider"]
