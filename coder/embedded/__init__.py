"""The offline embedded classifier: a sentence encoder plus small trained models."""
