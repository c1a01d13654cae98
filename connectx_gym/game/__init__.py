"""The game: Connect-X rules on bitboards (``bitboard``) and their observation planes (``planes``),
search (``solver``; the PUCT tree search over a policy-value network, ``search_board`` and
``tree_search``), and every opponent and agent behind one spec syntax (``specs``): built-in
(``opponents``), Kaggle agents (``kaggle_agent``), trained checkpoints (``checkpoint_opponent``,
``numpy_policy``), checkpoints searched by PUCT (``mcts_agent``) and self-play snapshots
(``selfplay``). Nothing here imports torch, SB3 or kaggle_environments until an opponent that needs
them is built."""
