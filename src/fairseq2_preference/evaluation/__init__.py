"""AlpacaEval 2 from a trained model: generation (a fairseq2 recipe) and judging."""
