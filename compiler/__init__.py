"""playdeck.compiler: name and type checks, the typed IR, lowering, and the IR printer."""
from .compile import Compiled, compile_file, compile_source, compile_text

__all__ = ["Compiled", "compile_file", "compile_source", "compile_text"]
