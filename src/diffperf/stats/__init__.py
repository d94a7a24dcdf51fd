"""Statistics: numbers and enums only (no words, no files): ratios, intervals and change points."""
