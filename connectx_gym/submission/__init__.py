"""The single-file Kaggle submission: its template, building it from a checkpoint, checking it through Kaggle.

The submission imports only the standard library and numpy. It embeds the policy's weights (a
base64 compressed ``.npz``, decoded once at import), its own copy of the forward pass and of the
observation planes, and ends with ``agent(observation, configuration)``: Kaggle plays the last
callable of the file. The agent plays the greedy policy over the legal columns; with a search
budget it first takes an immediate win or blocks an immediate loss, then runs a policy-ordered
alpha-beta search on bitboards for up to that many ms per move and plays the policy's favourite
among the moves the search has not proven lost (or a forced win it found). :mod:`.template` holds
the file, :mod:`.build` renders and writes it, :mod:`.check` plays it through ``kaggle_environments``.
"""
