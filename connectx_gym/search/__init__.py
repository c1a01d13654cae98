"""Search over the rules: Kaggle-exact negamax and alpha-beta (``alphabeta``, compiled by numba in
``compiled`` and ``alphabeta_kernels``), the PUCT tree search over a policy-value network (``puct``, with
its own bit masks in ``puct_board``: both numpy only and embedded verbatim in the Kaggle file), the
perfect 6x7 solver (``solver``, the optional ``bitbully`` extra) and the move distributions and values a
search teaches (``targets``). Nothing here reads checkpoint files: a search is handed its network."""
