"""Memory planning: what a model needs at run time, and where each tensor goes in one arena."""
from .arena import ArenaPlan, plan_arena, plan_offsets
from .estimate import Lifetime, MemoryEstimate, estimate_memory, lifetimes

__all__ = ["ArenaPlan", "Lifetime", "MemoryEstimate", "estimate_memory", "lifetimes", "plan_arena", "plan_offsets"]
