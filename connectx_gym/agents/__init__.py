"""Every agent and opponent behind one spec syntax (``specs``): built-in ones (``opponents``: random,
Kaggle's negamax, alpha-beta, mixtures), Kaggle agents by name or file (``kaggle``), trained checkpoints
(``checkpoint``), checkpoints searched by PUCT (``mcts``, the ``mcts:`` spec) and self-play snapshots
(``selfplay``). Nothing here imports torch, SB3 or kaggle_environments until an agent that needs them is
built."""
