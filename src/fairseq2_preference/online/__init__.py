"""Online, iterative preference training: sample from the policy, judge, pair, train DPO."""
