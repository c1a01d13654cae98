"""Network inference without torch: the policy-value network's forward pass in numpy (``numpy_policy``),
read safely from a checkpoint's weights and metadata, for workers, agents and the Kaggle file."""
