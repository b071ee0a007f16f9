"""R-DPO for fairseq2-preference, packaged separately as an example of a plug-in loss."""
