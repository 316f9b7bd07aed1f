"""知问 zhiwen: strict, sourced knowledge-base chat in Chinese and English, built on LangGraph."""

__version__ = "0.1.0"
__all__ = ["__version__"]
